//! Login: an IdToken from the Data API token endpoint or from Cognito `InitiateAuth`.
//!
//! The token lives only in memory; its expiry is read from the JWT itself because the
//! vendor's pages disagree on the lifetime (24 h vs 60 min).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::settings::{Environment, LoginMethod, Region, SaverisAccount};

/// The documented Cognito endpoint (only eu-central-1 is published).
pub const DEFAULT_COGNITO_ENDPOINT: &str = "https://cognito-idp.eu-central-1.amazonaws.com/";
/// The app client the Data API's own `/v1/token` uses (pool `eu-central-1_NiCXJp90i`), from
/// the vendor's OpenAPI downloaded from eu.p: EU production's public client id (not a
/// secret). Other environments publish none: Cognito there needs an endpoint and a client id.
pub const EU_PRODUCTION_CLIENT_ID: &str = "70pst9n4nc798mrqfo4ujen786";
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
    /// `said`: the vendor's own message, shown in the sentence (never holds the password:
    /// Cognito's messages do not echo it).
    #[error("Saveris rejected the user name or password{}.", said_part(.said))]
    WrongCredentials { said: String },
    #[error("Saveris does not know this user{}.", said_part(.said))]
    UnknownUser { said: String },
    #[error("This Saveris user is not confirmed yet: confirm it from the Saveris invitation first{}.", said_part(.said))]
    NotConfirmed { said: String },
    #[error(
        "The Cognito client id is not known at this endpoint: check the client id and the region (outside EU production, enter both the Cognito endpoint and the client id)."
    )]
    UnknownClient,
    /// A temporary password (Cognito `NEW_PASSWORD_REQUIRED`, `PasswordResetRequired`, or
    /// the Data API's 200 with an IdToken that is not a JWT).
    #[error("Saveris wants a new password — set it in the Saveris web app{}.", said_part(.said))]
    NewPasswordRequired { said: String },
    /// Another Cognito challenge (MFA, custom auth…): a step this app cannot take.
    #[error("Saveris asks for a sign-in step this app cannot do ({challenge}): sign in once in the Saveris web app, or use a user without it.")]
    Challenge { challenge: String },
    #[error("No password is stored for this account.")]
    MissingPassword,
    #[error("Could not reach the login server {host}: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("The login server answered unexpectedly ({0}).")]
    BadResponse(String),
}

/// " (Saveris said: “…”)", or nothing when the vendor said nothing.
fn said_part(said: &str) -> String {
    let said = said.trim().trim_end_matches('.');
    if said.is_empty() {
        String::new()
    } else {
        // Bounded: a vendor message is a sentence, not a page.
        let short: String = said.chars().take(200).collect();
        format!(" (Saveris said: “{short}”)")
    }
}

impl AuthError {
    /// A rejection the user must fix: the feed stops instead of retrying (retrying a wrong
    /// password only walks towards Cognito's lockout).
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
            LoginMethod::Cognito => {
                // EU production's pool and client are known; elsewhere nothing is guessed
                // (an empty client id stops the feed with "client id not known").
                let eu_p = account.custom.is_none()
                    && account.region == Region::Eu
                    && account.environment == Environment::Production;
                let endpoint = account.cognito_endpoint.trim();
                let client_id = account.cognito_client_id.trim();
                TokenSource::Cognito {
                    endpoint: match endpoint {
                        "" if eu_p || account.custom.is_some() => {
                            DEFAULT_COGNITO_ENDPOINT.to_string()
                        }
                        other => other.to_string(),
                    },
                    client_id: match client_id {
                        "" if eu_p => EU_PRODUCTION_CLIENT_ID.to_string(),
                        other => other.to_string(),
                    },
                }
            }
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
        return Err(
            classify_message(&body).unwrap_or(AuthError::WrongCredentials {
                said: message_of(&body),
            }),
        );
    }
    if !status.is_success() {
        // The gateway's 400 is `{"Status":"Error","Message":"$root.message"}`: Cognito's
        // message without its `__type` (SAVERIS-API.md §1.2); read by its words.
        return Err(classify_message(&body)
            .unwrap_or_else(|| AuthError::BadResponse(format!("HTTP {}", status.as_u16()))));
    }
    // The OpenAPI says `IdToken`, the prose says `idToken`: accept both.
    let token = ["IdToken", "idToken", "id_token"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .ok_or_else(|| AuthError::BadResponse("no IdToken in the answer".into()))?;
    // The gateway passes on only `AuthenticationResult.IdToken`: when Cognito answers with
    // a challenge (a temporary password) there is none, and the template sends an empty
    // or placeholder text with HTTP 200. Using it would end in `invalid authorization`.
    if !is_jwt(token) {
        return Err(AuthError::NewPasswordRequired {
            said: String::new(),
        });
    }
    Ok(Token::from_jwt(
        token.to_string(),
        Timestamp::now(),
        FALLBACK_LIFETIME,
    ))
}

/// Three dot-separated base64url parts whose first two are a JSON header and JSON claims
/// (the signature may be empty: the loopback server's tokens are unsigned).
pub fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let json_part = |p: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p.trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v.is_object())
    };
    let b64url = |p: &str| {
        p.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'=')
    };
    parts.len() == 3 && json_part(parts[0]) && json_part(parts[1]) && b64url(parts[2])
}

/// The vendor's message in an error body: `message` (Cognito, Lambda) or `Message`
/// (the Data API gateway).
fn message_of(body: &Value) -> String {
    body.get("message")
        .or_else(|| body.get("Message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Reads a Cognito-style (`__type`) or Data API style (`Status`/`Message`, no type) error
/// answer; `None` when it is not about the credentials or the client.
fn classify_message(body: &Value) -> Option<AuthError> {
    let kind = body.get("__type").and_then(Value::as_str).unwrap_or("");
    let said = message_of(body);
    let kind = kind.rsplit('#').next().unwrap_or(kind);
    let by_type = match kind {
        "NotAuthorizedException" => Some(AuthError::WrongCredentials { said: said.clone() }),
        "UserNotFoundException" => Some(AuthError::UnknownUser { said: said.clone() }),
        "UserNotConfirmedException" => Some(AuthError::NotConfirmed { said: said.clone() }),
        "PasswordResetRequiredException" => {
            Some(AuthError::NewPasswordRequired { said: said.clone() })
        }
        "ResourceNotFoundException" => Some(AuthError::UnknownClient),
        "InvalidParameterException" if said.to_ascii_lowercase().contains("client") => {
            Some(AuthError::UnknownClient)
        }
        _ => None,
    };
    if by_type.is_some() || !kind.is_empty() {
        return by_type;
    }
    // No type: Cognito's messages as the gateway passes them on.
    let m = said.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if has(&["client"]) && has(&["does not exist", "not found", "invalid"]) {
        Some(AuthError::UnknownClient)
    } else if has(&["password reset required", "reset password", "new password"]) {
        Some(AuthError::NewPasswordRequired { said })
    } else if has(&["not confirmed"]) {
        Some(AuthError::NotConfirmed { said })
    } else if has(&["does not exist", "user not found", "unknown user"]) {
        Some(AuthError::UnknownUser { said })
    } else if has(&[
        "incorrect username or password",
        "password attempts exceeded",
        "not authorized",
        "user is disabled",
        "invalid username or password",
    ]) {
        Some(AuthError::WrongCredentials { said })
    } else {
        None
    }
}

async fn cognito_login(
    http: &reqwest::Client,
    endpoint: &str,
    client_id: &str,
    username: &str,
    password: &str,
) -> Result<Token, AuthError> {
    if client_id.is_empty() || endpoint.is_empty() {
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
        // Every challenge needs the user, not a retry.
        return Err(if challenge == "NEW_PASSWORD_REQUIRED" {
            AuthError::NewPasswordRequired {
                said: String::new(),
            }
        } else {
            AuthError::Challenge {
                challenge: challenge.chars().take(60).collect(),
            }
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
            environment: Environment::Production,
            ..Default::default()
        };
        assert_eq!(
            TokenSource::for_account(&a),
            Some(TokenSource::DataApi {
                url: "https://data-api.am.p.savr.saveris.net/v1/token".into()
            })
        );
        // Outside EU production Cognito needs both, given explicitly.
        a.login = LoginMethod::Cognito;
        a.cognito_client_id = "abc".into();
        assert_eq!(
            TokenSource::for_account(&a),
            Some(TokenSource::Cognito {
                endpoint: String::new(),
                client_id: "abc".into()
            })
        );
        // EU production: the vendor's own client and pool are the default.
        let eu_p = SaverisAccount {
            login: LoginMethod::Cognito,
            ..Default::default()
        };
        assert_eq!(
            TokenSource::for_account(&eu_p),
            Some(TokenSource::Cognito {
                endpoint: DEFAULT_COGNITO_ENDPOINT.into(),
                client_id: EU_PRODUCTION_CLIENT_ID.into()
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
    fn data_api_400_bodies_are_read_by_their_words() {
        // The gateway's 400 template: capitalised keys, no `__type` (SAVERIS-API.md §1.2).
        let e = classify_message(
            &json!({"Status":"Error","Message":"Incorrect username or password."}),
        )
        .unwrap();
        assert!(e.is_rejection());
        assert_eq!(
            e.to_string(),
            "Saveris rejected the user name or password (Saveris said: “Incorrect username or password”)."
        );
        let cases = [
            ("User does not exist.", "does not know this user"),
            ("User is not confirmed.", "not confirmed"),
            (
                "Password reset required for the user",
                "wants a new password",
            ),
            ("Password attempts exceeded", "rejected the user name"),
            ("User pool client abc does not exist.", "client id"),
        ];
        for (said, want) in cases {
            let e = classify_message(&json!({"Status":"Error","Message":said})).unwrap();
            assert!(e.is_rejection(), "{said}");
            assert!(e.to_string().contains(want), "{said}: {e}");
        }
        // A 400 about our request, not the credentials: not a rejection.
        assert_eq!(
            classify_message(&json!({"Status":"Error","Message":"Invalid request body"})),
            None
        );
    }

    #[test]
    fn only_a_jwt_counts_as_an_id_token() {
        assert!(is_jwt(&jwt(&json!({"exp": 1}))));
        assert!(is_jwt(&format!(
            "{}x",
            jwt(&json!({"exp": 1})).trim_end_matches("sig")
        )));
        for bad in [
            "",
            "$root.AuthenticationResult.IdToken",
            "a.b",
            "a.b.c",
            "eyJhbGciOiJub25lIn0.not-json.sig",
        ] {
            assert!(!is_jwt(bad), "{bad}");
        }
    }

    #[test]
    fn cognito_errors_become_sentences() {
        assert_eq!(
            classify_message(&json!({"__type":"NotAuthorizedException","message":"x"})),
            Some(AuthError::WrongCredentials { said: "x".into() })
        );
        assert!(matches!(
            classify_message(&json!({"__type":"UserNotConfirmedException"})),
            Some(AuthError::NotConfirmed { .. })
        ));
        assert!(matches!(
            classify_message(&json!({"__type":"PasswordResetRequiredException"})),
            Some(AuthError::NewPasswordRequired { .. })
        ));
        assert!(AuthError::Challenge {
            challenge: "SMS_MFA".into()
        }
        .is_rejection());
        assert_eq!(
            classify_message(&json!({"__type":"ResourceNotFoundException"})),
            Some(AuthError::UnknownClient)
        );
        assert!(AuthError::NewPasswordRequired {
            said: String::new()
        }
        .is_rejection());
        assert!(!AuthError::BadResponse("x".into()).is_rejection());
    }
}
