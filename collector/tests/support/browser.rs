//! A real browser for the dashboard's tests: headless Chromium driven over
//! WebDriver by chromedriver (Debian's `chromium` and `chromium-driver`,
//! which `.ci/run` installs), spoken to with the tests' own HTTP client.
//! Without them a test says so and, in CI, fails. The browser and its
//! driver are ended when the [`Browser`] is dropped.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// A browser session; closed, with its driver, when dropped.
pub struct Browser {
    driver: Child,
    session: String,
    base: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// A headless Chromium at 1280 × 900, or `None` (said on stderr) where it
/// is not installed, outside CI.
pub fn browser() -> Option<Browser> {
    let (Some(driver), Some(chromium)) = (on_path("chromedriver"), on_path("chromium")) else {
        assert!(
            !in_ci(),
            "chromium and chromedriver are not installed: in CI, .ci/run installs them"
        );
        eprintln!("skipped: no chromium or chromedriver on PATH (.ci/run installs them)");
        return None;
    };
    Some(Browser::start(&driver, &chromium))
}

/// The port chromedriver says it took, from the line it prints once it
/// listens ("… started successfully on port 39565."), within 20 s. It
/// drains the rest of its output, so that a full pipe never blocks it.
fn port_from(stdout: std::process::ChildStdout) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = None;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if said.is_none() {
                said = line
                    .split_once("started successfully on port ")
                    .and_then(|(_, rest)| rest.trim_end_matches('.').trim().parse::<u16>().ok());
                if let Some(port) = said {
                    let _ = tx.send(port);
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("chromedriver names the port it listens on within 20 s")
}

impl Browser {
    fn start(driver: &std::path::Path, chromium: &std::path::Path) -> Self {
        // Port 0: the driver takes a free port itself and names it, so no
        // other test can take it between a pick and the driver's bind.
        // A process group of its own: Chromium's processes join it, and
        // are killed with it if the session cannot be closed.
        let mut driver = Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let stdout = driver.stdout.take().expect("chromedriver's stdout");
        let profile = tempfile::tempdir().expect("a profile dir");
        // Made before the first wait, so that a panic ends the driver.
        let mut browser = Self {
            driver,
            session: String::new(),
            base: String::new(),
            agent,
            _profile: profile,
        };
        browser.base = format!("http://127.0.0.1:{}", port_from(stdout));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = browser
                .agent
                .get(&format!("{}/status", browser.base))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_string().ok())
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["value"]["ready"] == json!(true));
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The flags a closed network needs: nothing reaches for Google.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--force-device-scale-factor=1",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!(
            "--user-data-dir={}",
            browser._profile.path().display()
        )])
        .collect::<Vec<_>>();
        let created = browser.call(
            "POST",
            "/session",
            &json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args}
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    /// A WebDriver command; its `value`, or a panic with the driver's error.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let url = format!("{}{path}", self.base);
        let mut response = match method {
            "POST" => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(body).expect("JSON")),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.get(&url).call(),
        }
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status == 200, "WebDriver {method} {path}: {status} {text}");
        value["value"].clone()
    }

    fn in_session(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    /// Loads `url` and waits for it (WebDriver's page load).
    pub fn open(&self, url: &str) {
        self.call("POST", &self.in_session("/url"), &json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page; what it returns.
    pub fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            &self.in_session("/execute/sync"),
            &json!({ "script": script, "args": [] }),
        )
    }

    /// Resizes the window.
    pub fn resize(&self, width: u64, height: u64) {
        self.call(
            "POST",
            &self.in_session("/window/rect"),
            &json!({ "width": width, "height": height }),
        );
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call("GET", &self.in_session("/screenshot"), &Value::Null);
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 text"))
            .expect("a PNG in base64")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closes Chromium; then the driver, by its id.
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(&format!("{}/session/{}", self.base, self.session))
                .call();
        }
        if let Some(group) = i32::try_from(self.driver.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
