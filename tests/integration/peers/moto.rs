//! moto_server as a real Cognito IdP endpoint on 127.0.0.1.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};

use super::{free_ports, spawn_child, stop_child, wait_port};

pub struct Moto {
    pub port: u16,
    child: Mutex<Option<Child>>,
}

impl Moto {
    pub fn start() -> Result<Moto, String> {
        let port = free_ports(1)[0];
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_child(cmd)
            .map_err(|e| format!("moto_server: {e} (pip install 'moto[cognitoidp,server]')"))?;
        let moto = Moto {
            port,
            child: Mutex::new(Some(child)),
        };
        if !wait_port(port, Duration::from_secs(30)) {
            return Err("moto_server did not open its port".into());
        }
        Ok(moto)
    }

    /// One moto shared by the tests (each makes its own user pool); dies with the binary.
    pub fn shared() -> Arc<Moto> {
        static SHARED: OnceLock<Arc<Moto>> = OnceLock::new();
        SHARED
            .get_or_init(|| Arc::new(Moto::start().expect("moto_server must start")))
            .clone()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// One Cognito call, with the exact headers the real service needs.
    pub async fn call(&self, action: &str, body: Value) -> Value {
        let resp = reqwest::Client::new()
            .post(self.endpoint())
            .header(
                "X-Amz-Target",
                format!("AWSCognitoIdentityProviderService.{action}"),
            )
            .header("Content-Type", "application/x-amz-json-1.1")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// A pool with an app client that allows USER_PASSWORD_AUTH: (pool id, client id).
    pub async fn pool(&self, name: &str) -> (String, String) {
        let pool = self.call("CreateUserPool", json!({"PoolName": name})).await;
        let pool_id = pool["UserPool"]["Id"].as_str().unwrap().to_string();
        let client = self
            .call(
                "CreateUserPoolClient",
                json!({"UserPoolId": pool_id, "ClientName": "alarm-tray",
                       "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
            )
            .await;
        let client_id = client["UserPoolClient"]["ClientId"]
            .as_str()
            .unwrap()
            .to_string();
        (pool_id, client_id)
    }

    /// A user; with `permanent` false it keeps a temporary password (NEW_PASSWORD_REQUIRED).
    pub async fn user(&self, pool_id: &str, username: &str, password: &str, permanent: bool) {
        self.call(
            "AdminCreateUser",
            json!({"UserPoolId": pool_id, "Username": username, "TemporaryPassword": password, "MessageAction": "SUPPRESS"}),
        )
        .await;
        if permanent {
            self.call(
                "AdminSetUserPassword",
                json!({"UserPoolId": pool_id, "Username": username, "Password": password, "Permanent": true}),
            )
            .await;
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            stop_child(&mut c, Duration::from_secs(5));
        }
    }
}
