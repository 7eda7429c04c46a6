//! Every setting the config file and the environment can set: its TOML key, its
//! environment variable, whether it is a secret, and what it is for.

/// One setting: its TOML key, its environment variable, and whether it is a secret.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub toml: &'static str,
    pub env: &'static str,
    pub secret: bool,
    pub about: &'static str,
}

pub const SDKAPPID: Setting = Setting {
    toml: "sdkappid",
    env: "CALLFEED_SDKAPPID",
    secret: false,
    about: "the app's SDKAppID (TRTC / Chat console)",
};
pub const SDK_SECRET_KEY: Setting = Setting {
    toml: "sdk_secret_key",
    env: "CALLFEED_SDK_SECRET_KEY",
    secret: true,
    about: "the app's secret key that UserSigs are made with",
};
pub const ADMIN: Setting = Setting {
    toml: "admin",
    env: "CALLFEED_ADMIN",
    secret: false,
    about: "an App administrator account for the call-engine REST API",
};
pub const SECRET_ID: Setting = Setting {
    toml: "secret_id",
    env: "TENCENTCLOUD_SECRET_ID",
    secret: true,
    about: "API 3.0 SecretId (CAM API key)",
};
pub const SECRET_KEY: Setting = Setting {
    toml: "secret_key",
    env: "TENCENTCLOUD_SECRET_KEY",
    secret: true,
    about: "API 3.0 SecretKey (CAM API key)",
};
pub const DATA_CENTER: Setting = Setting {
    toml: "data_center",
    env: "CALLFEED_DATA_CENTER",
    secret: false,
    about: "where the SDKAppID lives; picks the default hosts and region",
};
pub const REGION: Setting = Setting {
    toml: "region",
    env: "CALLFEED_REGION",
    secret: false,
    about: "X-TC-Region of TRTC API 3.0 requests",
};
pub const IM_ENDPOINT: Setting = Setting {
    toml: "im_endpoint",
    env: "CALLFEED_IM_ENDPOINT",
    secret: false,
    about: "base URL of the IM / call-engine REST API",
};
pub const TRTC_ENDPOINT: Setting = Setting {
    toml: "trtc_endpoint",
    env: "CALLFEED_TRTC_ENDPOINT",
    secret: false,
    about: "base URL of TRTC API 3.0",
};
pub const HTTP_TIMEOUT_MS: Setting = Setting {
    toml: "http_timeout_ms",
    env: "CALLFEED_HTTP_TIMEOUT_MS",
    secret: false,
    about: "time one cloud request attempt may take",
};
pub const HTTP_MAX_ATTEMPTS: Setting = Setting {
    toml: "http_max_attempts",
    env: "CALLFEED_HTTP_MAX_ATTEMPTS",
    secret: false,
    about: "attempts per cloud request, for retryable failures",
};
pub const RATE_LIMITS: Setting = Setting {
    toml: "rate_limits",
    env: "CALLFEED_RATE_LIMITS",
    secret: false,
    about: "client-side limits at the documented cloud rates (20/s per ingest action, 200/s per call command)",
};

pub const ALL_SETTINGS: [Setting; 12] = [
    SDKAPPID,
    SDK_SECRET_KEY,
    ADMIN,
    SECRET_ID,
    SECRET_KEY,
    DATA_CENTER,
    REGION,
    IM_ENDPOINT,
    TRTC_ENDPOINT,
    HTTP_TIMEOUT_MS,
    HTTP_MAX_ATTEMPTS,
    RATE_LIMITS,
];
