//! A small W3C WebDriver client over HTTP, for the tests of what a person looks at: Debian's
//! `chromedriver` driving headless `chromium`, or `geckodriver` driving Debian's headless
//! `firefox-esr`. Only the commands the tests use.

#![allow(dead_code)]

use std::{
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Which browser a driver drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
}

impl Engine {
    fn driver(self) -> &'static str {
        match self {
            Self::Chromium => "chromedriver",
            Self::Firefox => "geckodriver",
        }
    }

    /// The capabilities of a headless window of 1400×1100.
    fn capabilities(self) -> Value {
        match self {
            Self::Chromium => json!({
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1400,1100"]
                }
            }),
            Self::Firefox => json!({
                "browserName": "firefox",
                "moz:firefoxOptions": {
                    "binary": "/usr/bin/firefox-esr",
                    "args": ["-headless", "-width=1400", "-height=1100"]
                }
            }),
        }
    }
}

/// A running WebDriver server on a free loopback port; stopped on drop. `geckodriver` serves
/// one session at a time: start one driver per Firefox window.
pub struct Driver {
    child: Child,
    engine: Engine,
    pub base: String,
    client: reqwest::Client,
}

impl Driver {
    pub async fn start(engine: Engine) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group, so that the browsers it starts go with it, even when a test
        // panics before closing them.
        let child = Command::new(engine.driver())
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} ({e}; scripts/test.sh installs chromium-driver from Debian and \
                     geckodriver from crates.io)",
                    engine.driver()
                )
            });
        let driver = Self {
            child,
            engine,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver
                .client
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start",
                engine.driver()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new headless browser window.
    pub async fn browser(&self) -> Browser {
        let caps = json!({ "capabilities": { "alwaysMatch": self.engine.capabilities() } });
        let v: Value = self
            .client
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {v}"))
            .to_string();
        Browser {
            url: format!("{}/session/{id}", self.base),
            client: self.client.clone(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Browser {
    url: String,
    client: reqwest::Client,
}

/// An element found on the page.
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.client.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        let value = v["value"].clone();
        if let Some(error) = value.get("error").filter(|_| !path.ends_with("/displayed")) {
            panic!("WebDriver {path}: {error} {}", value["message"]);
        }
        value
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The element with `data-testid` = `id`, waiting up to 20 s for it to be there and shown.
    pub async fn testid(&self, id: &str) -> Element {
        self.find(&format!("[data-testid=\"{id}\"]")).await
    }

    /// The first element matching `css` that is displayed, waiting up to 20 s.
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self
                .post(
                    "/elements",
                    json!({ "using": "css selector", "value": css }),
                )
                .await;
            for e in v.as_array().cloned().unwrap_or_default() {
                let e = Element(e[ELEMENT].as_str().unwrap().to_string());
                if self.displayed(&e).await {
                    return e;
                }
            }
            assert!(Instant::now() < deadline, "no visible `{css}` on the page");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn displayed(&self, e: &Element) -> bool {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/displayed", e.0),
            None,
        )
        .await
            == json!(true)
    }

    pub async fn click(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await;
    }

    /// Two clicks in quick succession at the element's centre, as a mouse sends them.
    pub async fn double_click(&self, e: &Element) {
        let press = [
            json!({ "type": "pointerDown", "button": 0 }),
            json!({ "type": "pointerUp", "button": 0 }),
        ];
        let mut actions = vec![json!({
            "type": "pointerMove", "duration": 0, "x": 0, "y": 0,
            "origin": { ELEMENT: e.0 }
        })];
        actions.extend(press.iter().cloned().chain(press.iter().cloned()));
        self.post(
            "/actions",
            json!({ "actions": [{
                "type": "pointer", "id": "mouse",
                "parameters": { "pointerType": "mouse" },
                "actions": actions
            }] }),
        )
        .await;
    }

    pub async fn clear(&self, e: &Element) {
        self.post(&format!("/element/{}/clear", e.0), json!({}))
            .await;
    }

    pub async fn type_text(&self, e: &Element, text: &str) {
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text }))
            .await;
    }

    /// A DOM property (`value`, `naturalWidth`, `textContent`, …).
    pub async fn property(&self, e: &Element, name: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/property/{name}", e.0),
            None,
        )
        .await
    }

    pub async fn attribute(&self, e: &Element, name: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{}/attribute/{name}", e.0),
            None,
        )
        .await
    }

    /// Runs `script` (a function body) in the page and returns its result.
    pub async fn run(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Waits up to 20 s for `script` to return `true`.
    pub async fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.run(script).await != json!(true) {
            assert!(Instant::now() < deadline, "{what}: not within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends keys to the page (outside any input).
    pub async fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                let k = c.to_string();
                [
                    json!({ "type": "keyDown", "value": k }),
                    json!({ "type": "keyUp", "value": k }),
                ]
            })
            .collect();
        self.post(
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        )
        .await;
    }

    /// Every resource the page loaded came from its own origin (or a blob it made).
    pub async fn assert_only_own_origin(&self) {
        let foreign = self
            .run(
                "return performance.getEntriesByType('resource').map(e => e.name)\
                 .filter(n => !n.startsWith(location.origin + '/') && !n.startsWith('blob:'));",
            )
            .await;
        assert_eq!(foreign, json!([]), "requests to another host");
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    pub async fn close(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}
