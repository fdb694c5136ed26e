//! Where a node keeps its files: one rule shared by `hearthd` and `hearthctl`, so the CLI
//! always finds the daemon's socket. Pure: callers pass in the facts they read.

use std::path::{Path, PathBuf};

/// File name of the admin socket inside the data dir.
pub const SOCKET_FILE: &str = "hearthd.sock";

/// The data dir of a node run by root.
pub const ROOT_DATA_DIR: &str = "/var/lib/hearth";

/// The default data dir: [`ROOT_DATA_DIR`] for root, else `$XDG_DATA_HOME/hearth`, else
/// `$HOME/.local/share/hearth`.
pub fn default_data_dir(
    is_root: bool,
    xdg_data_home: Option<&Path>,
    home: Option<&Path>,
) -> PathBuf {
    if is_root {
        return PathBuf::from(ROOT_DATA_DIR);
    }
    match (xdg_data_home, home) {
        (Some(xdg), _) => xdg.join("hearth"),
        (None, Some(home)) => home.join(".local/share/hearth"),
        (None, None) => PathBuf::from(".local/share/hearth"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_then_xdg_then_home() {
        let (xdg, home) = (Path::new("/x"), Path::new("/h"));
        assert_eq!(
            default_data_dir(true, Some(xdg), Some(home)),
            Path::new(ROOT_DATA_DIR)
        );
        assert_eq!(
            default_data_dir(false, Some(xdg), Some(home)),
            Path::new("/x/hearth")
        );
        assert_eq!(
            default_data_dir(false, None, Some(home)),
            Path::new("/h/.local/share/hearth")
        );
    }
}
