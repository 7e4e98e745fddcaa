//! API keys, exposure rules and configuration, checked on the real binary.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{Server, free_port, kestrel};
use serde_json::json;

fn get_with(server: &Server, path: &str, auth: Option<&str>) -> common::Reply {
    let mut req = server.agent.get(server.url(path));
    if let Some(value) = auth {
        req = req.header("Authorization", value);
    }
    common::Reply::from(req.call())
}

/// Runs `kestrel serve ...` expecting it to refuse to start; returns its output.
fn refused(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = kestrel();
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .envs(env.iter().copied());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kestrel");
    // A refusal is immediate; a server that started would run forever, so give it a deadline.
    for _ in 0..200 {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!(
        "kestrel started instead of refusing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn auth_on_with_one_key() {
    let server = Server::start_with(&[], &[("KESTREL_API_KEY", "s3cret-key")]);
    let missing = get_with(&server, "/api/v1/projects", None);
    assert_eq!(missing.status, 401, "{}", missing.text);
    assert_eq!(missing.json["error"]["code"], "unauthorized");
    assert!(
        missing.error_message().contains("Authorization: Bearer"),
        "{}",
        missing.text
    );

    let wrong = get_with(&server, "/api/v1/projects", Some("Bearer s3cret-kez"));
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.error_message().contains("invalid API key"),
        "{}",
        wrong.text
    );
    let longer = get_with(
        &server,
        "/api/v1/projects",
        Some("Bearer s3cret-key-and-more"),
    );
    assert_eq!(longer.status, 401);
    let scheme = get_with(&server, "/api/v1/projects", Some("Basic czNjcmV0LWtleQ=="));
    assert_eq!(scheme.status, 401);
    assert!(scheme.error_message().contains("Bearer"), "{}", scheme.text);

    assert_eq!(
        get_with(&server, "/api/v1/projects", Some("Bearer s3cret-key")).status,
        200
    );
    assert_eq!(
        get_with(&server, "/api/v1/projects", Some("bearer s3cret-key")).status,
        200
    );
    // Health stays open; unknown routes do not reveal themselves without a key.
    assert_eq!(get_with(&server, "/healthz", None).status, 200);
    assert_eq!(get_with(&server, "/api/v1/nothing", None).status, 401);
    let ingest = server
        .agent
        .post(server.url("/api/v1/ingest"))
        .send_json(json!({"records": []}));
    assert_eq!(common::Reply::from(ingest).status, 401);
    // The helpers send the key.
    server
        .post("/api/v1/projects", &json!({"name": "guarded"}))
        .expect(200);
}

#[test]
fn auth_with_a_keys_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "# team keys\nkey-one\n\n  key-two   # the laptop\n# key-three\n",
    )
    .expect("write keys");
    let keys_arg = keys.to_str().expect("utf-8 path");
    let server = Server::start_with(&["--api-keys-file", keys_arg], &[]);
    assert_eq!(
        get_with(&server, "/api/v1/traces", Some("Bearer key-one")).status,
        200
    );
    assert_eq!(
        get_with(&server, "/api/v1/traces", Some("Bearer key-two")).status,
        200
    );
    assert_eq!(
        get_with(&server, "/api/v1/traces", Some("Bearer key-three")).status,
        401
    );
    assert_eq!(get_with(&server, "/api/v1/traces", None).status, 401);
    drop(server);

    // The file may come from the environment too, and adds to KESTREL_API_KEY.
    let server = Server::start_with(
        &[],
        &[
            ("KESTREL_API_KEYS_FILE", keys_arg),
            ("KESTREL_API_KEY", "env-key"),
        ],
    );
    assert_eq!(
        get_with(&server, "/api/v1/traces", Some("Bearer key-two")).status,
        200
    );
    assert_eq!(
        get_with(&server, "/api/v1/traces", Some("Bearer env-key")).status,
        200
    );

    // A keys file without keys is a mistake, not an open server.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "# nothing yet\n").expect("write");
    let out = refused(
        &[
            "--addr",
            "127.0.0.1:0",
            "--api-keys-file",
            empty.to_str().expect("path"),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("holds no key"), "{}", stderr(&out));
}

#[test]
fn auth_off_lets_everything_through() {
    let server = Server::start();
    assert_eq!(get_with(&server, "/api/v1/projects", None).status, 200);
    assert_eq!(
        get_with(&server, "/api/v1/projects", Some("Bearer anything")).status,
        200
    );
}

#[test]
fn an_open_server_stays_on_loopback() {
    let port = free_port().to_string();
    let addr = format!("0.0.0.0:{port}");
    let out = refused(&["--addr", &addr], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    for word in ["refusing", "0.0.0.0", "KESTREL_API_KEY", "--allow-open"] {
        assert!(err.contains(word), "{word:?} not in {err}");
    }
    // The environment form of the address is checked the same way.
    let out = refused(&[], &[("KESTREL_ADDR", &addr)]);
    assert!(stderr(&out).contains("refusing"), "{}", stderr(&out));

    // --allow-open (or KESTREL_ALLOW_OPEN=1) accepts it; traffic still goes to 127.0.0.1 only.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = kestrel()
        .args(["serve", "--addr", &addr, "--data-dir"])
        .arg(dir.path().join("data"))
        .env("KESTREL_ALLOW_OPEN", "1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let agent = common::agent();
    let mut up = false;
    for _ in 0..400 {
        if let Ok(r) = agent.get(format!("http://127.0.0.1:{port}/healthz")).call()
            && r.status() == 200
        {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        up,
        "kestrel with KESTREL_ALLOW_OPEN=1 did not start on {addr}"
    );
}

#[test]
fn config_file_keys_and_precedence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "addr = \"127.0.0.1:0\"\nmax_body_byte = 10\n").expect("write");
    let out = refused(&["--config", bad.to_str().expect("path")], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("max_body_byte") && err.contains("unknown field"),
        "{err}"
    );

    // Values from the file apply; a flag beats the file, the environment beats the file.
    let file = dir.path().join("kestrel.toml");
    std::fs::write(&file, "max_body_bytes = \"1KiB\"\nlog = \"info\"\n").expect("write");
    let file_arg = file.to_str().expect("path");
    let body = json!({"name": "x".repeat(10), "pad": "y".repeat(2000)});
    let from_file = Server::start_with(&["--config", file_arg], &[]);
    let reply = from_file.post("/api/v1/projects", &body);
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(
        reply.error_message().contains("1024 bytes"),
        "{}",
        reply.text
    );
    drop(from_file);
    let flag_wins = Server::start_with(
        &["--max-body-bytes", "1MiB"],
        &[("KESTREL_CONFIG", file_arg)],
    );
    assert_eq!(
        flag_wins.post("/api/v1/projects", &body).status,
        400,
        "over 1 KiB but under 1 MiB: parsed"
    );
    drop(flag_wins);
    let env_wins = Server::start_with(
        &["--config", file_arg],
        &[("KESTREL_MAX_BODY_BYTES", "4096")],
    );
    assert_eq!(env_wins.post("/api/v1/projects", &body).status, 400);

    // Bad values are named.
    let out = refused(&["--addr", "localhost-ish"], &[]);
    assert!(stderr(&out).contains("localhost-ish"), "{}", stderr(&out));
    let out = refused(&["--addr", "127.0.0.1:0", "--max-body-bytes", "lots"], &[]);
    assert!(
        stderr(&out).contains("--max-body-bytes") && stderr(&out).contains("lots"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn serve_help_lists_every_flag_and_variable() {
    let out = kestrel().args(["serve", "--help"]).output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--addr",
        "--data-dir",
        "--api-key",
        "--api-keys-file",
        "--allow-open",
        "--max-body-bytes",
        "--max-decompressed-bytes",
        "--config",
        "--log",
        "KESTREL_ADDR",
        "KESTREL_DATA_DIR",
        "KESTREL_API_KEY",
        "KESTREL_API_KEYS_FILE",
        "KESTREL_ALLOW_OPEN",
        "KESTREL_MAX_BODY_BYTES",
        "KESTREL_MAX_DECOMPRESSED_BYTES",
        "KESTREL_CONFIG",
        "KESTREL_LOG",
    ] {
        assert!(
            help.contains(word),
            "{word} missing from `kestrel serve --help`:\n{help}"
        );
    }
}

#[test]
fn without_data_dir_the_local_data_folder_is_used() {
    let home = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut child = kestrel()
        .arg("serve")
        .env("KESTREL_ADDR", format!("127.0.0.1:{port}"))
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("share"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let agent = common::agent();
    let mut created = None;
    for _ in 0..400 {
        if let Ok(r) = agent
            .post(format!("http://127.0.0.1:{port}/api/v1/projects"))
            .send_json(json!({"name": "where"}))
            && r.status() == 200
        {
            created = Some(r.status().as_u16());
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    assert_eq!(
        created,
        Some(200),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = home.path().join("share").join("kestrel");
    assert!(dir.is_dir(), "no data in {}", dir.display());
    assert!(std::fs::read_dir(&dir).expect("read dir").count() > 0);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(dir.to_str().expect("path")),
        "the log names the data dir: {log}"
    );
}
