//! The node's ed25519 key on disk: created once with owner-only permissions, loaded after.

use hearth_proto::NodeKey;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File name of the key inside the data dir.
pub const KEY_FILE: &str = "node.key";

/// Errors loading or creating the key.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// No key yet.
    #[error(
        "no node key at {0}; run `hearthd init` to found a mesh or `hearthd join CODE` to join one"
    )]
    Missing(PathBuf),
    /// The key file is readable by others.
    #[error("node key {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    TooOpen {
        /// Key file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The key file is not 32 bytes.
    #[error("node key {0} is corrupt (expected 32 bytes); restore it from backup, or remove the data dir and join again")]
    Corrupt(PathBuf),
    /// Filesystem failure.
    #[error("cannot access node key {path}: {source}")]
    Io {
        /// Key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Loads the key in `data_dir`.
pub fn load(data_dir: &Path) -> Result<NodeKey, IdentityError> {
    let path = data_dir.join(KEY_FILE);
    let io = |source| IdentityError::Io {
        path: path.clone(),
        source,
    };
    let metadata = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IdentityError::Missing(path))
        }
        Err(e) => return Err(io(e)),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::TooOpen { path, mode });
    }
    let bytes = std::fs::read(&path).map_err(io)?;
    let secret: [u8; 32] = bytes
        .try_into()
        .map_err(|_| IdentityError::Corrupt(path.clone()))?;
    Ok(NodeKey::from_secret(secret))
}

/// Loads the key in `data_dir`, creating the directory and a new key if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<NodeKey, IdentityError> {
    match load(data_dir) {
        Err(IdentityError::Missing(path)) => {
            let io = |source| IdentityError::Io {
                path: path.clone(),
                source,
            };
            std::fs::create_dir_all(data_dir).map_err(io)?;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io)?;
            let key = NodeKey::generate();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            file.write_all(&key.secret_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(key)
        }
        other => other,
    }
}

/// Checks a node or mesh name: 1–63 characters of letters, digits, `-`, `_`, `.`.
pub fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= hearth_proto::record::MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid name: use 1-63 letters, digits, `-`, `_` or `.`"
        ))
    }
}

/// A default node name: the host name, cleaned to a valid name.
pub fn default_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = raw
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(hearth_proto::record::MAX_NAME_LEN)
        .collect();
    if cleaned.is_empty() {
        "node".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let key = load_or_create(&data).unwrap();
        let mode = std::fs::metadata(data.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(&data).unwrap().id(), key.id());
        assert_eq!(load_or_create(&data).unwrap().id(), key.id());
    }

    #[test]
    fn an_open_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load(dir.path()),
            Err(IdentityError::TooOpen { .. })
        ));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("home-1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
    }
}
