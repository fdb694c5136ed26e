//! The backend every path leads to: one nginx worker on the home host serving two files.

use super::daemon::Daemon;
use super::install::which;
use super::measure::{wait_ok, Target};
use crate::lab::Host;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// The port nginx listens on (every interface of the home host).
pub const PORT: u16 = 8000;
/// The small file, 1 KiB.
pub const SMALL: &str = "/1k";
/// The large file.
pub const LARGE: &str = "/100m";
/// Size of the large file: 100 MB.
pub const LARGE_BYTES: u64 = 100_000_000;

/// Starts nginx (one worker, its own config, pid, logs and temp dirs under `dir`) on `home`
/// and waits until it serves the small file.
pub async fn start(home: &Host, dir: &Path) -> Result<Daemon> {
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join(&SMALL[1..]), vec![b'x'; 1024])?;
    // Sparse: the page cache serves zeros, so the disk is not what is measured.
    std::fs::File::create(www.join(&LARGE[1..]))?.set_len(LARGE_BYTES)?;
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process on;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n  \
         keepalive_requests 1000000;\n  keepalive_timeout 300s;\n  \
         default_type application/octet-stream;\n  \
         client_body_temp_path {d}/tmp-body;\n  proxy_temp_path {d}/tmp-proxy;\n  \
         fastcgi_temp_path {d}/tmp-fastcgi;\n  uwsgi_temp_path {d}/tmp-uwsgi;\n  \
         scgi_temp_path {d}/tmp-scgi;\n  \
         server {{ listen {PORT}; root {}; }}\n}}\n",
        www.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf)?;
    let nginx = which("nginx").context("nginx is not installed")?;
    let conf_arg = conf_path.to_string_lossy().into_owned();
    let prefix = dir.to_string_lossy().into_owned();
    let error_log = dir.join("nginx-startup.log").to_string_lossy().into_owned();
    let mut daemon = Daemon::start(
        home,
        "nginx",
        &nginx,
        &["-p", &prefix, "-e", &error_log, "-c", &conf_arg],
        &[],
        dir.join("nginx.log"),
    )?;
    let local = Target {
        base: format!("http://127.0.0.1:{PORT}"),
        host_header: None,
    };
    if let Err(e) = wait_ok(home, &local, SMALL, Duration::from_secs(10)).await {
        daemon.check_alive()?;
        return Err(e.context("nginx does not serve"));
    }
    Ok(daemon)
}
