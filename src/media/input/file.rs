//! Files and playlists of files: read from storage as fast as asked, replayable.

use std::path::{Path, PathBuf};

use super::spec::{Input, InputError, InputSpec, invalid};

/// A file GStreamer decodes (audio, video, or a still image).
pub(super) struct File<'a>(pub(super) &'a Path);

/// Files played one after another.
pub(super) struct Playlist<'a>(pub(super) &'a [PathBuf]);

impl Input for File<'_> {
    fn check_available(&self) -> Result<(), InputError> {
        check_file(self.0)
    }
    fn is_live(&self) -> bool {
        false
    }
    fn is_replayable(&self) -> bool {
        true
    }
    fn uris(&self) -> Option<Vec<String>> {
        Some(vec![file_uri(self.0)])
    }
    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

impl Input for Playlist<'_> {
    fn check_available(&self) -> Result<(), InputError> {
        self.0.iter().try_for_each(|p| check_file(p))
    }
    fn is_live(&self) -> bool {
        false
    }
    fn is_replayable(&self) -> bool {
        true
    }
    fn uris(&self) -> Option<Vec<String>> {
        Some(self.0.iter().map(|p| file_uri(p)).collect())
    }
    fn describe(&self) -> String {
        format!(
            "playlist:{}",
            self.0
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
    }
}

/// `playlist:A,B,C`.
pub(super) fn parse_playlist(spec: &str, rest: &str) -> Result<InputSpec, InputError> {
    let items: Vec<PathBuf> = rest
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| PathBuf::from(s.trim()))
        .collect();
    if items.is_empty() {
        return Err(invalid(
            spec,
            "a playlist needs at least one file: playlist:a.mp3,b.mp4",
        ));
    }
    Ok(InputSpec::Playlist(items))
}

/// The path as a URI, made absolute but not resolved: links are followed when it is opened,
/// where the input's guard judges where they lead — a message naming the file names the path
/// that was given, never where a link swapped in since points.
fn file_uri(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    url::Url::from_file_path(&absolute)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| format!("file://{}", absolute.display()))
}

fn check_file(path: &Path) -> Result<(), InputError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(InputError::Missing {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(InputError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
        Ok(m) if m.is_dir() => Err(InputError::Unreadable {
            path: path.to_path_buf(),
            reason: "it is a directory".into(),
        }),
        Ok(m) if m.len() == 0 => Err(InputError::Unreadable {
            path: path.to_path_buf(),
            reason: "it is empty".into(),
        }),
        Ok(_) => std::fs::File::open(path)
            .map(|_| ())
            .map_err(|e| InputError::Unreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
    }
}
