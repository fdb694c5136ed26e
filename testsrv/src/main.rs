//! `hearth-testsrv`: the service inside the Docker test image (`FROM scratch`, so it is built
//! static and uses only std). `serve` answers HTTP with its name and echoes raw TCP;
//! `health` is the image's health check and fails when the container has `HEALTH=fail`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

const USAGE: &str = "usage: hearth-testsrv serve [--http PORT] [--tcp PORT] [--name NAME] | health";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("health") => {
            if std::env::var("HEALTH").as_deref() == Ok("fail") {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn flag(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn serve(args: &[String]) -> ExitCode {
    let name = flag(args, "--name", "testsrv");
    let http = flag(args, "--http", "8080");
    let tcp = flag(args, "--tcp", "2222");
    let (http, tcp) = match (
        TcpListener::bind(format!("0.0.0.0:{http}")),
        TcpListener::bind(format!("0.0.0.0:{tcp}")),
    ) {
        (Ok(h), Ok(t)) => (h, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    thread::spawn(move || {
        for stream in tcp.incoming().flatten() {
            thread::spawn(move || echo(stream));
        }
    });
    for stream in http.incoming().flatten() {
        let name = name.clone();
        thread::spawn(move || hello(stream, &name));
    }
    ExitCode::SUCCESS
}

fn echo(mut stream: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// Answers every request on a keep-alive connection with the service's name.
fn hello(stream: TcpStream, name: &str) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        let mut lines = 0;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            lines += 1;
            if line == "\r\n" || line == "\n" {
                break;
            }
            if lines > 100 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let text = format!("hello from {name}\n");
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
