//! The loopback registry, the closed port, the hanging server and the counting proxy behave
//! like the real things tests use them for.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::{CountingProxy, Registry, SlowServer};

fn get_v2_status(host: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("GET /v2/ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.lines().next().unwrap_or_default().to_owned())
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn registry_serves_v2_then_stop_closes_port_and_drop_removes_everything() -> anyhow::Result<()> {
    let mut registry = Registry::start()?;
    let host = registry.host();
    assert!(host.starts_with("127.0.0.1:"), "host was {host}");
    let pid = registry.pid().expect("a started registry has a pid");
    let dir: PathBuf = registry.root_dir().to_path_buf();
    assert!(process_exists(pid));
    assert!(dir.join("config.yml").exists());
    assert_eq!(get_v2_status(&host)?, "HTTP/1.1 200 OK");

    registry.stop()?;
    assert!(!registry.is_running());
    assert!(!process_exists(pid), "docker-registry {pid} still exists after stop");
    let refused = get_v2_status(&host).expect_err("a stopped registry cannot answer");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

    drop(registry);
    assert!(!dir.exists(), "{} was not removed", dir.display());
    Ok(())
}

#[test]
fn registry_is_killed_and_removed_when_the_owning_test_panics() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let registry = Registry::start().expect("registry starts");
        *seen.lock().expect("not poisoned") =
            Some((registry.pid().expect("running"), registry.root_dir().to_path_buf()));
        panic!("test failure while the registry runs");
    });
    assert!(result.is_err());
    let (pid, dir) = seen.into_inner().expect("not poisoned").expect("registry started");
    assert!(!process_exists(pid), "docker-registry {pid} survived the panic");
    assert!(!dir.exists(), "{} survived the panic", dir.display());
}

#[test]
fn parallel_registries_get_their_own_ports() -> anyhow::Result<()> {
    let registries = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3).map(|_| scope.spawn(Registry::start)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("start thread did not panic"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut hosts: Vec<String> = registries.iter().map(Registry::host).collect();
    for host in &hosts {
        assert_eq!(get_v2_status(host)?, "HTTP/1.1 200 OK");
    }
    hosts.sort();
    hosts.dedup();
    assert_eq!(hosts.len(), 3);
    Ok(())
}

#[test]
fn a_closed_port_refuses_connections_and_no_server_can_take_it() -> anyhow::Result<()> {
    let closed = testkit::ClosedPort::new()?;
    let error = TcpStream::connect(closed.addr()).expect_err("nothing listens there");
    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    let taken = std::net::TcpListener::bind(closed.addr()).expect_err("the port is held");
    assert_eq!(taken.kind(), ErrorKind::AddrInUse);
    Ok(())
}

#[test]
fn slow_server_accepts_and_never_answers() -> anyhow::Result<()> {
    let server = SlowServer::start()?;
    let mut stream = TcpStream::connect(server.addr())?;
    stream.set_read_timeout(Some(Duration::from_millis(300)))?;
    stream.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut buffer = [0u8; 16];
    let error = stream.read(&mut buffer).expect_err("the server never answers");
    assert!(
        matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{error:?}"
    );
    assert_eq!(server.connections(), 1);
    Ok(())
}

#[test]
fn counting_proxy_records_requests_and_can_refuse_or_delay() -> anyhow::Result<()> {
    let registry = Registry::start()?;
    let proxy = CountingProxy::start(registry.addr())?;
    let host = proxy.host();

    let digest = testkit::push_image(&host, "proxied/app", "v1", "proxied")?;
    assert_eq!(proxy.count("PUT", "/v2/proxied/app/manifests/v1"), 1);
    assert!(proxy.count("PUT", "/blobs/uploads/") >= 2, "{:?}", proxy.requests());

    proxy.reset();
    assert_eq!(testkit::resolve_digest(&host, "proxied/app", "v1")?, digest);
    assert_eq!(proxy.count("HEAD", "/v2/proxied/app/manifests/v1"), 1);

    proxy.set_refusing(true);
    assert!(testkit::resolve_digest(&host, "proxied/app", "v1").is_err());
    proxy.set_refusing(false);

    proxy.set_delay(Duration::from_millis(400));
    let started = std::time::Instant::now();
    assert_eq!(testkit::resolve_digest(&host, "proxied/app", "v1")?, digest);
    assert!(started.elapsed() >= Duration::from_millis(400));
    Ok(())
}

#[test]
fn registry_dies_with_a_test_process_that_never_drops_it() -> anyhow::Result<()> {
    // A child test process starts a registry, leaks it and exits without running Drop.
    if std::env::var_os("TESTKIT_LEAK_REGISTRY").is_some() {
        let registry = Registry::start()?;
        println!("pid={}", registry.pid().unwrap_or_default());
        println!("dir={}", registry.root_dir().display());
        std::mem::forget(registry);
        std::process::exit(0);
    }
    let output = testkit::run_bounded(
        std::process::Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "registry_dies_with_a_test_process_that_never_drops_it",
                "--nocapture",
            ])
            .env("TESTKIT_LEAK_REGISTRY", "1"),
        Duration::from_secs(120),
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("pid="))
        .and_then(|pid| pid.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no pid in child output: {stdout}"))?;
    assert_ne!(pid, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while process_exists(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!process_exists(pid), "docker-registry {pid} outlived its test process");
    if let Some(dir) = stdout.lines().find_map(|line| line.strip_prefix("dir=")) {
        std::fs::remove_dir_all(dir.trim())?;
    }
    Ok(())
}
