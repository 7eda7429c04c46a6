//! Speech: `tts:` words spoken into a WAV file once, kept in the cache by the words, voice,
//! rate, language and engine, and from then on played as that file — so fifty rooms saying
//! the same words cost one synthesis. The engine is a small trait; eSpeak NG (Debian's
//! `espeak-ng`) is the one built in, run offline on the node with the words on its standard
//! input (never on a command line) and a deadline.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::input::SpeechRequest;

/// How long one synthesis may take (5000 characters take a few seconds).
const SPEAK_WITHIN: Duration = Duration::from_secs(60);

/// Why words were not spoken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpeechError {
    #[error(
        "tts: the speech engine eSpeak NG is not installed on this node: install Debian's espeak-ng (make setup)"
    )]
    Missing,
    #[error("tts: eSpeak NG could not speak the words: {0}")]
    Failed(String),
    #[error("tts: the speech cache cannot be written: {0}")]
    Cache(String),
}

/// One of the engine's voices.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Voice {
    /// What `?voice=` takes.
    pub name: String,
    pub language: String,
    pub gender: String,
}

/// A speech engine: what says words into a file, and the voices it has.
pub trait SpeechEngine: Send + Sync {
    /// Its name in the cache key: another engine's words are other files.
    fn name(&self) -> &'static str;
    /// Says `request` into a WAV file at `into`.
    fn speak(
        &self,
        request: &SpeechRequest,
        into: &Path,
    ) -> impl Future<Output = Result<(), SpeechError>> + Send;
    fn voices(&self) -> impl Future<Output = Result<Vec<Voice>, SpeechError>> + Send;
}

/// eSpeak NG, run as a program.
#[derive(Debug, Clone, Copy, Default)]
pub struct EspeakNg;

const ESPEAK: &str = "espeak-ng";

/// Whether eSpeak NG is on this node's PATH.
pub fn engine_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(ESPEAK).is_file()))
}

impl SpeechEngine for EspeakNg {
    fn name(&self) -> &'static str {
        ESPEAK
    }

    async fn speak(&self, request: &SpeechRequest, into: &Path) -> Result<(), SpeechError> {
        let mut command = tokio::process::Command::new(ESPEAK);
        command.arg("-w").arg(into).args(["-b", "1", "--stdin"]);
        if let Some(voice) = request.voice.as_ref().or(request.lang.as_ref()) {
            command.args(["-v", voice]);
        }
        if let Some(rate) = request.rate {
            command.args(["-s", &rate.to_string()]);
        }
        if request.markup {
            command.arg("-m");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SpeechError::Missing,
                _ => SpeechError::Failed(e.to_string()),
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(request.text.as_bytes())
                .await
                .map_err(|e| SpeechError::Failed(e.to_string()))?;
        }
        let done = tokio::time::timeout(SPEAK_WITHIN, child.wait_with_output())
            .await
            .map_err(|_| {
                SpeechError::Failed(format!("it took more than {}s", SPEAK_WITHIN.as_secs()))
            })?
            .map_err(|e| SpeechError::Failed(e.to_string()))?;
        let said = String::from_utf8_lossy(&done.stderr).trim().to_owned();
        // eSpeak NG says why on stderr (an unknown voice), and may still exit 0.
        if !done.status.success() || said.contains("Failed") || !into.exists() {
            return Err(SpeechError::Failed(if said.is_empty() {
                format!("it exited with {}", done.status)
            } else {
                said
            }));
        }
        Ok(())
    }

    async fn voices(&self) -> Result<Vec<Voice>, SpeechError> {
        let listed = tokio::process::Command::new(ESPEAK)
            .arg("--voices")
            .output()
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SpeechError::Missing,
                _ => SpeechError::Failed(e.to_string()),
            })?;
        Ok(parse_voices(&String::from_utf8_lossy(&listed.stdout)))
    }
}

/// `espeak-ng --voices`: `Pty Language Age/Gender VoiceName File Other Languages`.
fn parse_voices(listed: &str) -> Vec<Voice> {
    listed
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (language, gender, file) = (fields.get(1)?, fields.get(2)?, fields.get(4)?);
            Some(Voice {
                // `-v` takes the file's name (`gmw/en-US`) or the language (`en-us`).
                name: file.rsplit('/').next().unwrap_or(file).to_owned(),
                language: (*language).to_owned(),
                gender: match gender.rsplit('/').next() {
                    Some("M") => "male",
                    Some("F") => "female",
                    _ => "unknown",
                }
                .to_owned(),
            })
        })
        .collect()
}

/// One synthesis at a time, so sessions that ask for the same words at once wait for the
/// first's file rather than each making it.
static SPEAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The file `request`'s words are spoken in, under `cache_dir`: made once by `engine`.
pub async fn spoken_file(
    request: &SpeechRequest,
    cache_dir: &Path,
    engine: &impl SpeechEngine,
) -> Result<PathBuf, SpeechError> {
    let dir = cache_dir.join("speech");
    let path = dir.join(format!("{}.wav", cache_key(request, engine.name())));
    let _one = SPEAKING.lock().await;
    if path.is_file() {
        return Ok(path);
    }
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| SpeechError::Cache(e.to_string()))?;
    let partial = path.with_extension(format!("{}.part", uuid::Uuid::new_v4().simple()));
    let spoken = engine.speak(request, &partial).await;
    if let Err(e) = spoken {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    tokio::fs::rename(&partial, &path)
        .await
        .map_err(|e| SpeechError::Cache(e.to_string()))?;
    Ok(path)
}

/// The words, voice, rate, language, markup and engine, hashed.
fn cache_key(request: &SpeechRequest, engine: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [
        engine,
        request.voice.as_deref().unwrap_or(""),
        &request.rate.map(|r| r.to_string()).unwrap_or_default(),
        request.lang.as_deref().unwrap_or(""),
        if request.markup { "ssml" } else { "text" },
        &request.text,
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_are_read_from_espeaks_listing() {
        let listed = "Pty Language       Age/Gender VoiceName          File                 Other Languages\n 5  af              --/M      Afrikaans          gmw/af\n 2  en-us           --/M      English_(America)  gmw/en-US            (en 3)\n";
        let voices = parse_voices(listed);
        assert_eq!(voices.len(), 2);
        assert_eq!(voices[1].name, "en-US");
        assert_eq!(voices[1].language, "en-us");
        assert_eq!(voices[1].gender, "male");
    }

    #[test]
    fn the_cache_key_changes_with_each_part() {
        let words = |text: &str, rate| SpeechRequest {
            text: text.into(),
            voice: None,
            rate,
            lang: None,
            markup: false,
        };
        let key = |r: &SpeechRequest| cache_key(r, ESPEAK);
        assert_eq!(key(&words("hello", None)), key(&words("hello", None)));
        assert_ne!(key(&words("hello", None)), key(&words("hello", Some(160))));
        assert_ne!(key(&words("hello", None)), key(&words("hullo", None)));
    }
}
