//! Login: an IdToken from the Data API token endpoint or from Cognito `InitiateAuth`.
//!
//! The token lives only in memory; its expiry is read from the JWT itself because the
//! vendor's pages disagree on the lifetime (24 h vs 60 min).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::settings::{LoginMethod, SaverisAccount};

/// The documented Cognito endpoint (only eu-central-1 is published).
pub const DEFAULT_COGNITO_ENDPOINT: &str = "https://cognito-idp.eu-central-1.amazonaws.com/";
/// Assumed lifetime when neither the JWT nor the answer says (the shorter documented one).
const FALLBACK_LIFETIME: Duration = Duration::from_secs(3600);

/// An IdToken and when it expires. `Debug` never shows the token.
#[derive(Clone)]
pub struct Token {
    pub id_token: String,
    /// The JWT's `exp` (the server's clock).
    pub exp: Timestamp,
    /// When it was fetched, on the feed's clock.
    pub fetched_at: Timestamp,
    /// `exp - iat` from the JWT: renewal is planned on the local clock from this, so a
    /// local clock that is off (or jumps) cannot make every fresh token look expired.
    pub lifetime: jiff::SignedDuration,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id_token", &"<redacted>")
            .field("exp", &self.exp)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl Token {
    /// Builds a token from a JWT, reading `exp` (and `iat`); `fallback` is the lifetime
    /// when the JWT says nothing usable.
    pub fn from_jwt(id_token: String, fetched_at: Timestamp, fallback: Duration) -> Token {
        let fallback =
            jiff::SignedDuration::try_from(fallback).unwrap_or(jiff::SignedDuration::from_hours(1));
        let claims = jwt_claims(&id_token);
        let second = |name: &str| {
            claims
                .as_ref()
                .and_then(|c| c.get(name))
                .and_then(Value::as_i64)
                .and_then(|s| Timestamp::from_second(s).ok())
        };
        let (exp, iat) = (second("exp"), second("iat"));
        let lifetime = match (exp, iat) {
            (Some(e), Some(i)) if e > i => e.duration_since(i),
            (Some(e), _) if e > fetched_at => e.duration_since(fetched_at),
            _ => fallback,
        };
        let exp = exp.unwrap_or_else(|| fetched_at.checked_add(lifetime).unwrap_or(fetched_at));
        Token {
            id_token,
            exp,
            fetched_at,
            lifetime,
        }
    }

    /// When to fetch a new one: a fifth of the lifetime ahead of expiry, at most 5 min
    /// ahead, so a 60 min token renews after 55 min and a 20 s test token after 16 s.
    pub fn renew_at(&self) -> Timestamp {
        let life = self.lifetime.max(jiff::SignedDuration::ZERO);
        let margin = (life / 5).min(jiff::SignedDuration::from_mins(5));
        self.fetched_at
            .checked_add(life - margin)
            .unwrap_or(self.fetched_at)
    }
}

/// The `exp` claim of a JWT (seconds since the epoch), unverified: the server checks the
/// signature, we only need to know when to renew.
pub fn jwt_exp(jwt: &str) -> Option<Timestamp> {
    jwt_claims(jwt)?
        .get("exp")?
        .as_i64()
        .and_then(|s| Timestamp::from_second(s).ok())
}

/// The claims of a JWT, unverified.
pub fn jwt_claims(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Saveris rejected the user name or password.")]
    WrongCredentials,
    #[error("Saveris does not know this user.")]
    UnknownUser,
    #[error(
        "The Cognito client id is not known at this endpoint: check the client id and the region."
    )]
    UnknownClient,
    #[error("This account still has a temporary password: sign in once on the Saveris website and choose a new password.")]
    NewPasswordRequired,
    #[error("No password is stored for this account.")]
    MissingPassword,
    #[error("Could not reach the login server {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("The login server answered unexpectedly ({0}).")]
    BadResponse(String),
}

impl AuthError {
    /// A rejection the user must fix: the feed stops instead of retrying.
    pub fn is_rejection(&self) -> bool {
        !matches!(
            self,
            AuthError::Unreachable { .. } | AuthError::BadResponse(_)
        )
    }
}

/// Where the token comes from, resolved from the account settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    DataApi { url: String },
    Cognito { endpoint: String, client_id: String },
}

impl TokenSource {
    /// The token source of an account; `None` for a custom endpoint without a token URL
    /// (STOMP login/passcode instead).
    pub fn for_account(account: &SaverisAccount) -> Option<TokenSource> {
        // A custom endpoint with the Data API method: its token URL, or none at all (STOMP
        // login/passcode). With Cognito chosen, Cognito it is.
        if let Some(c) = &account.custom {
            if account.login == LoginMethod::DataApi {
                let url = c.token_url.trim();
                return (!url.is_empty()).then(|| TokenSource::DataApi {
                    url: url.to_string(),
                });
            }
        }
        Some(match account.login {
            LoginMethod::DataApi => TokenSource::DataApi {
                url: format!(
                    "https://data-api.{}.{}.savr.saveris.net/v1/token",
                    account.region.as_str(),
                    account.environment.letter()
                ),
            },
            LoginMethod::Cognito => TokenSource::Cognito {
                endpoint: if account.cognito_endpoint.trim().is_empty() {
                    DEFAULT_COGNITO_ENDPOINT.to_string()
                } else {
                    account.cognito_endpoint.trim().to_string()
                },
                client_id: account.cognito_client_id.trim().to_string(),
            },
        })
    }
}

/// Logs in with the account's method. `http` should have a timeout set.
pub async fn login(
    http: &reqwest::Client,
    source: &TokenSource,
    username: &str,
    password: &str,
) -> Result<Token, AuthError> {
    match source {
        TokenSource::DataApi { url } => data_api_login(http, url, username, password).await,
        TokenSource::Cognito {
            endpoint,
            client_id,
        } => cognito_login(http, endpoint, client_id, username, password).await,
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> AuthError {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| url.to_string());
    let reason = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        // reqwest errors name the URL, which holds no secret here (credentials are in the body).
        e.to_string()
    };
    AuthError::Unreachable { host, reason }
}

async fn data_api_login(
    http: &reqwest::Client,
    url: &str,
    username: &str,
    password: &str,
) -> Result<Token, AuthError> {
    let resp = http
        .post(url)
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .map_err(|e| unreachable(url, &e))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(classify_message(&body).unwrap_or(AuthError::WrongCredentials));
    }
    if !status.is_success() {
        return Err(classify_message(&body)
            .unwrap_or_else(|| AuthError::BadResponse(format!("HTTP {}", status.as_u16()))));
    }
    // The OpenAPI says `IdToken`, the prose says `idToken`: accept both.
    let token = ["IdToken", "idToken", "id_token"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .ok_or_else(|| AuthError::BadResponse("no IdToken in the answer".into()))?;
    Ok(Token::from_jwt(
        token.to_string(),
        Timestamp::now(),
        FALLBACK_LIFETIME,
    ))
}

/// Reads a Cognito-style or free-text error answer.
fn classify_message(body: &Value) -> Option<AuthError> {
    let kind = body.get("__type").and_then(Value::as_str).unwrap_or("");
    let message = body
        .get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = kind.rsplit('#').next().unwrap_or(kind);
    match kind {
        "NotAuthorizedException" => Some(AuthError::WrongCredentials),
        "UserNotFoundException" => Some(AuthError::UnknownUser),
        "ResourceNotFoundException" => Some(AuthError::UnknownClient),
        "InvalidParameterException" if message.to_ascii_lowercase().contains("client") => {
            Some(AuthError::UnknownClient)
        }
        "PasswordResetRequiredException" => Some(AuthError::NewPasswordRequired),
        _ => None,
    }
}

async fn cognito_login(
    http: &reqwest::Client,
    endpoint: &str,
    client_id: &str,
    username: &str,
    password: &str,
) -> Result<Token, AuthError> {
    if client_id.is_empty() {
        return Err(AuthError::UnknownClient);
    }
    let body = json!({
        "AuthFlow": "USER_PASSWORD_AUTH",
        "ClientId": client_id,
        "AuthParameters": {"USERNAME": username, "PASSWORD": password},
    });
    let resp = http
        .post(endpoint)
        .header(
            "X-Amz-Target",
            "AWSCognitoIdentityProviderService.InitiateAuth",
        )
        .header("Content-Type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| unreachable(endpoint, &e))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| unreachable(endpoint, &e))?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(classify_message(&answer)
            .unwrap_or_else(|| AuthError::BadResponse(format!("HTTP {}", status.as_u16()))));
    }
    if let Some(challenge) = answer.get("ChallengeName").and_then(Value::as_str) {
        return Err(if challenge == "NEW_PASSWORD_REQUIRED" {
            AuthError::NewPasswordRequired
        } else {
            AuthError::BadResponse(format!("unsupported challenge {challenge}"))
        });
    }
    let result = answer
        .get("AuthenticationResult")
        .ok_or_else(|| AuthError::BadResponse("no AuthenticationResult".into()))?;
    let token = result
        .get("IdToken")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::BadResponse("no IdToken in the answer".into()))?;
    let fallback = result
        .get("ExpiresIn")
        .and_then(Value::as_u64)
        .map(Duration::from_secs)
        .unwrap_or(FALLBACK_LIFETIME);
    Ok(Token::from_jwt(
        token.to_string(),
        Timestamp::now(),
        fallback,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{CustomEndpoint, Environment, Region};

    fn jwt(claims: &Value) -> String {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            b.encode(br#"{"alg":"none"}"#),
            b.encode(claims.to_string())
        )
    }

    #[test]
    fn exp_is_read_from_the_jwt() {
        let t = Token::from_jwt(
            jwt(&json!({"exp": 1_700_003_600})),
            Timestamp::from_second(1_700_000_000).unwrap(),
            FALLBACK_LIFETIME,
        );
        assert_eq!(t.exp.as_second(), 1_700_003_600);
        assert_eq!(t.renew_at().as_second(), 1_700_003_600 - 300);
        let short = Token::from_jwt(
            jwt(&json!({"exp": 1_700_000_020})),
            Timestamp::from_second(1_700_000_000).unwrap(),
            FALLBACK_LIFETIME,
        );
        assert_eq!(short.renew_at().as_second(), 1_700_000_016);
        let none = Token::from_jwt(
            "garbage".into(),
            Timestamp::from_second(1_700_000_000).unwrap(),
            Duration::from_secs(60),
        );
        assert_eq!(none.exp.as_second(), 1_700_000_060);
    }

    #[test]
    fn debug_hides_the_token() {
        let t = Token::from_jwt(
            "secret.token.value".into(),
            Timestamp::now(),
            FALLBACK_LIFETIME,
        );
        assert!(!format!("{t:?}").contains("secret"));
    }

    #[test]
    fn endpoints_follow_region_and_environment() {
        let mut a = SaverisAccount {
            region: Region::Am,
            environment: Environment::Integration,
            ..Default::default()
        };
        assert_eq!(
            TokenSource::for_account(&a),
            Some(TokenSource::DataApi {
                url: "https://data-api.am.i.savr.saveris.net/v1/token".into()
            })
        );
        a.login = LoginMethod::Cognito;
        a.cognito_client_id = "abc".into();
        assert_eq!(
            TokenSource::for_account(&a),
            Some(TokenSource::Cognito {
                endpoint: DEFAULT_COGNITO_ENDPOINT.into(),
                client_id: "abc".into()
            })
        );
        a.login = LoginMethod::DataApi;
        a.custom = Some(CustomEndpoint {
            ws_url: "ws://x".into(),
            ..Default::default()
        });
        assert_eq!(TokenSource::for_account(&a), None);
        a.login = LoginMethod::Cognito;
        assert!(matches!(
            TokenSource::for_account(&a),
            Some(TokenSource::Cognito { .. })
        ));
    }

    #[test]
    fn cognito_errors_become_sentences() {
        assert_eq!(
            classify_message(&json!({"__type":"NotAuthorizedException","message":"x"})),
            Some(AuthError::WrongCredentials)
        );
        assert_eq!(
            classify_message(&json!({"__type":"ResourceNotFoundException"})),
            Some(AuthError::UnknownClient)
        );
        assert!(AuthError::NewPasswordRequired.is_rejection());
        assert!(!AuthError::BadResponse("x".into()).is_rejection());
    }
}
