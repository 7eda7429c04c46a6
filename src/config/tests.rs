//! The configuration's tests: files, environment overrides, and what is refused.
use super::*;
use std::collections::HashMap;

/// The example in the repository loads, names every setting, and its values are the
/// defaults it claims.
#[test]
fn the_example_config_names_every_setting_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    for setting in ALL_SETTINGS {
        assert!(
            text.contains(&format!("{} =", setting.toml)) && text.contains(setting.env),
            "config.example.toml does not show {} / {}",
            setting.toml,
            setting.env
        );
    }
    let example = Config::load_with(Some(&path), &|_| None).unwrap();
    let defaults = Config::load_with(None, &|_| None).unwrap();
    for (a, b) in example
        .render_redacted()
        .lines()
        .skip(1)
        .zip(defaults.render_redacted().lines().skip(1))
    {
        let value = |l: &str| l.split("  #").next().unwrap_or_default().to_owned();
        assert_eq!(value(a), value(b), "the example's value is not the default");
    }
    assert!(example.emulator.default_behaviour.is_some());
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn defaults_follow_the_data_center() {
    let c = Config::load_with(None, &env(&[("CALLFEED_DATA_CENTER", "singapore")])).unwrap();
    assert_eq!(c.im_endpoint.as_str(), "https://adminapisgp.im.qcloud.com/");
    assert_eq!(
        c.trtc_endpoint.as_str(),
        "https://trtc.intl.tencentcloudapi.com/"
    );
    assert_eq!(c.region, "ap-singapore");
    assert_eq!(c.admin, "administrator");
    let c = Config::load_with(None, &env(&[])).unwrap();
    assert_eq!(c.im_endpoint.as_str(), "https://console.tim.qq.com/");
    assert_eq!(
        c.trtc_endpoint.as_str(),
        "https://trtc.tencentcloudapi.com/"
    );
}

#[test]
fn env_overrides_file() {
    let dir = std::env::temp_dir().join(format!("callfeed-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        "sdkappid = 1400000001\nadmin = \"boss\"\nim_endpoint = \"http://127.0.0.1:9/x\"\n",
    )
    .unwrap();
    let c = Config::load_with(Some(&path), &env(&[("CALLFEED_SDKAPPID", "1400000002")])).unwrap();
    assert_eq!(c.sdkappid, Some(1_400_000_002));
    assert_eq!(c.source(SDKAPPID), Source::Env);
    assert_eq!(c.admin, "boss");
    assert_eq!(c.source(ADMIN), Source::File);
    assert_eq!(c.im_endpoint.as_str(), "http://127.0.0.1:9/x/");
    std::fs::write(&path, "sdkapid = 1\n").unwrap();
    let err = Config::load_with(Some(&path), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("sdkapid"), "{err}");
}

#[test]
fn missing_values_name_env_and_toml() {
    let c = Config::load_with(None, &env(&[])).unwrap();
    let err = c.im_credentials().unwrap_err().to_string();
    assert!(
        err.contains("CALLFEED_SDKAPPID") && err.contains("`sdkappid`"),
        "{err}"
    );
    let c = Config::load_with(None, &env(&[("CALLFEED_SDKAPPID", "1400000000")])).unwrap();
    let err = c.im_credentials().unwrap_err().to_string();
    assert!(
        err.contains("CALLFEED_SDK_SECRET_KEY") && err.contains("`sdk_secret_key`"),
        "{err}"
    );
    let err = c.api_credentials().unwrap_err().to_string();
    assert!(err.contains("TENCENTCLOUD_SECRET_ID"), "{err}");
}

#[test]
fn bad_values_are_named() {
    let err = Config::load_with(None, &env(&[("CALLFEED_SDKAPPID", "abc")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CALLFEED_SDKAPPID") && err.contains("`abc`"),
        "{err}"
    );
    let err = Config::load_with(None, &env(&[("CALLFEED_DATA_CENTER", "mars")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("singapore"), "{err}");
    let err = Config::load_with(None, &env(&[("CALLFEED_IM_ENDPOINT", "ftp://x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("CALLFEED_IM_ENDPOINT"), "{err}");
}

#[test]
fn secrets_never_render() {
    let c = Config::load_with(
        None,
        &env(&[
            ("CALLFEED_SDK_SECRET_KEY", "topsecretappkey"),
            ("TENCENTCLOUD_SECRET_ID", "AKIDsecretid"),
            ("TENCENTCLOUD_SECRET_KEY", "topsecretapikey"),
        ]),
    )
    .unwrap();
    for text in [c.render_redacted(), format!("{c:?}")] {
        for secret in ["topsecretappkey", "AKIDsecretid", "topsecretapikey"] {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
    assert!(c.render_redacted().contains("secret_key = \"<redacted>\""));
}
