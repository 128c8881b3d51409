//! `bankgate serve` as an operator runs it: the real binary, its environment, its output.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `bankgate serve` process on the in-memory store (ports chosen by the system); killed
/// when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Standard error as it is read (a thread drains it, so the process never blocks).
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// Starts `bankgate [args] serve` with `env` on top of an environment without any of the
    /// gateway's variables, and waits until it says where it listens.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Served {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bankgate"));
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("BANKGATE_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .args(args)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("BANKGATE_") && name != "BANKGATE_FIXTURES"
                || name == "DATABASE_URL"
            {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the bankgate binary runs");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("bankgate listening on ") {
                        break rest
                            .split_whitespace()
                            .next()
                            .expect("an address")
                            .to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let output = child.wait_with_output().expect("output");
                    panic!(
                        "serve stopped before listening: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            }
        };
        // Keep draining standard output so the process never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let source = child.stderr.take().expect("stderr");
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(source).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Served {
            child,
            base,
            stderr,
            drain: Some(drain),
        }
    }

    /// Stops the process and returns everything it wrote to standard error.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `BANKGATE_CONFIG=` (and every other variable set but empty) means unset: `serve` starts
/// on its defaults instead of refusing an empty file name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_variables_mean_unset() {
    let served = Served::start(
        &[],
        &[
            ("BANKGATE_CONFIG", ""),
            ("DATABASE_URL", ""),
            ("BANKGATE_ADMIN_TOKEN", ""),
            ("BANKGATE_SIGNING_KEY_FILE", ""),
            ("BANKGATE_PUBLIC_URL", ""),
        ],
    );
    let http = bankgate::crypto::http_client_builder().build().unwrap();
    let health: serde_json::Value = http
        .get(format!("{}/healthz", served.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["store"], "memory", "{health}");
    // An empty admin token is no admin token: the admin API is off.
    let status = http
        .post(format!("{}/admin/policies/reload", served.base))
        .bearer_auth("")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    served.stop();
}
