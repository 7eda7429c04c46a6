//! `callfeed config` and `callfeed version`: what this installation would run with.

use std::process::ExitCode;

use crate::config::Config;

/// The effective configuration, secrets redacted, each value saying where it came from.
pub(super) fn config(config: &Config) -> anyhow::Result<ExitCode> {
    print!("{}", config.render_redacted());
    print!("{}", emulator_section(config)?);
    print!("{}", pipelines_section(config));
    Ok(ExitCode::SUCCESS)
}

/// The `[emulator]` table as the emulator would run with it, each line saying whether the
/// value is the file's or the default.
fn emulator_section(config: &Config) -> anyhow::Result<String> {
    let mut demo = config.clone();
    crate::app::use_demo_credentials(&mut demo);
    let effective = crate::app::emulator_config(&demo)?;
    let table = &config.emulator;
    let origin = |set: bool| {
        if set {
            "from the config file"
        } else {
            "default"
        }
    };
    let mut out = String::from("\n[emulator]  # how `callfeed emulator` and `--emulator` behave\n");
    out.push_str(&format!(
        "pace = {}  # {}\n",
        inline(&effective.pace),
        origin(table.pace.is_some())
    ));
    out.push_str(&format!(
        "record_delay_ms = {}  # {}\n",
        effective.record_delay.as_millis(),
        origin(table.record_delay_ms.is_some())
    ));
    out.push_str(&format!(
        "default_behaviour = {}  # {}\n",
        inline(&effective.default_behaviour),
        origin(table.default_behaviour.is_some())
    ));
    let mut callees: Vec<_> = effective.behaviours.iter().collect();
    callees.sort_by(|a, b| a.0.cmp(b.0));
    if callees.is_empty() {
        out.push_str("# behaviours: none (every callee does the default)\n");
    }
    for (callee, behaviour) in callees {
        out.push_str(&format!(
            "behaviours.{} = {}  # from the config file\n",
            toml_key(callee),
            inline(behaviour)
        ));
    }
    match &table.trtc_callback {
        Some(c) => out.push_str(&format!(
            "trtc_callback = {{ url = {}, key = \"<redacted>\" }}  # from the config file\n",
            inline(&c.url)
        )),
        None => out.push_str("# trtc_callback: none (no ingest webhooks are sent)\n"),
    }
    Ok(out)
}

/// The `[pipelines]` overrides of `pipelines/topologies.toml`.
fn pipelines_section(config: &Config) -> String {
    let mut out = String::from("\n[pipelines]  # overrides of pipelines/topologies.toml\n");
    if config.pipelines.values().all(|s| s.is_empty()) {
        out.push_str("# none: the built-in topologies are used\n");
    }
    for (section, fragments) in &config.pipelines {
        for (name, fragment) in fragments {
            out.push_str(&format!(
                "{}.{} = {}  # from the config file\n",
                toml_key(section),
                toml_key(name),
                serde_json::to_string(fragment).unwrap_or_default()
            ));
        }
    }
    out
}

/// A TOML key, quoted when it is not bare.
fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        serde_json::to_string(key).unwrap_or_default()
    }
}

/// A value as inline TOML: strings quoted, a table as `{ k = v, ... }`.
fn inline<T: serde::Serialize>(value: &T) -> String {
    match toml::Value::try_from(value) {
        Ok(toml::Value::Table(t)) => {
            let fields: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {v}", toml_key(k)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Ok(v) => v.to_string(),
        Err(_) => "?".into(),
    }
}

/// A completion script for `shell`, from the same definitions as `--help`.
pub(super) fn completions(
    mut command: clap::Command,
    shell: clap_complete::Shell,
) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "callfeed", &mut script);
    print_all(&script)
}

/// The manual page, from the same definitions as `--help`.
pub(super) fn man(command: clap::Command) -> anyhow::Result<ExitCode> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    print_all(&page)
}

/// Writes `bytes` to stdout; a reader that stops early (`| head`) is not an error.
fn print_all(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// callfeed's version, then GStreamer's; a missing GStreamer is reported, not fatal, since
/// the cloud-only commands still work without it.
pub(super) fn version() -> anyhow::Result<ExitCode> {
    println!("callfeed {}", env!("CARGO_PKG_VERSION"));
    match crate::media::runtime_version() {
        Ok(v) => println!("{v}"),
        Err(e) => println!("GStreamer: unavailable ({e})"),
    }
    Ok(ExitCode::SUCCESS)
}
