//! The server as a separate process: seeded in-process first, then run by
//! this same executable (`wardline-bench server …`, the library's
//! `Server::build` + `serve`, as `wardline serve` runs it) so that it can be
//! killed with SIGKILL and its CPU time and memory read from `/proc`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;

/// A seeded data directory (and database) the server process runs on.
pub struct Seeded {
    pub url: String,
    pub ca: Vec<u8>,
    pub listen: std::net::SocketAddr,
    pub database_url: Option<String>,
    pub dir: tempfile::TempDir,
}

/// Sets up the bench organisation with `users` nurses (see [`start`]) and
/// stops the in-process server again, keeping its data.
pub async fn seed(database: Option<String>, users: usize) -> anyhow::Result<Seeded> {
    let (r, _, _) = start(database, users).await?;
    r.handle.shutdown();
    // Let the in-process server's audit writer finish before another process opens the store.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Seeded {
        url: r.url,
        ca: r.ca,
        listen: r.listen,
        database_url: r.database_url,
        dir: r.dir,
    })
}

/// The child's entry point: serve `data_dir` until killed.
pub async fn serve_child(
    data_dir: PathBuf,
    listen: std::net::SocketAddr,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    let mut config = Config {
        data_dir,
        listen,
        database_url,
        ..Config::default()
    };
    config.log.level = "warn".into();
    // The idle-socket phase opens thousands of sockets over the load's few
    // hundred devices; the per-device and per-user caps are for real clients.
    config.limits.max_sockets_per_device = usize::MAX;
    config.limits.max_sockets_per_user = usize::MAX;
    // Hundreds of simulated clients sign in from one address within a second
    // (the anonymous rate limit is for floods, not this).
    config.limits.anonymous_burst = 100_000;
    config.limits.anonymous_per_sec = 100_000;
    let listener = bind_retrying(listen)?;
    let server = Server::build(config).await?;
    let handle = axum_server::Handle::new();
    server.serve(listener, handle).await?;
    Ok(())
}

/// Binds `addr`, retrying for up to 10 s: the killed server it replaces may
/// not have let go of the port yet.
fn bind_retrying(addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.into()),
        }
    }
}

pub struct ServerProcess {
    child: Child,
    data_dir: PathBuf,
    listen: std::net::SocketAddr,
    database_url: Option<String>,
    pub url: String,
    ca: Vec<u8>,
    /// Server starts (1 + restarts).
    pub starts: usize,
}

impl ServerProcess {
    pub async fn spawn(s: &Seeded) -> anyhow::Result<ServerProcess> {
        let mut p = ServerProcess {
            child: launch(s.dir.path(), s.listen, s.database_url.as_deref())?,
            data_dir: s.dir.path().to_owned(),
            listen: s.listen,
            database_url: s.database_url.clone(),
            url: s.url.clone(),
            ca: s.ca.clone(),
            starts: 1,
        };
        p.wait_ready().await?;
        Ok(p)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    pub async fn restart(&mut self) -> anyhow::Result<Duration> {
        let t = Instant::now();
        self.child = launch(&self.data_dir, self.listen, self.database_url.as_deref())?;
        self.starts += 1;
        self.wait_ready().await?;
        Ok(t.elapsed())
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&self.ca)?)
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "server process exited ({status}) before it was ready; see {}",
                    self.log_path().display()
                );
            }
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        cpu_time(self.pid())
    }

    pub fn rss(&self) -> anyhow::Result<u64> {
        rss(self.pid())
    }
}

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").context("/proc stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // USER_HZ is 100 on Linux for every architecture Rust targets.
    Ok(Duration::from_millis(ticks * 10))
}

/// CPU time of every PostgreSQL process on this machine (the server's
/// backends do the query work a PostgreSQL deployment moves out of Wardline).
pub fn postgres_cpu_time() -> anyhow::Result<Duration> {
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "postgres")
            && let Ok(t) = cpu_time(pid)
        {
            total += t;
        }
    }
    Ok(total)
}

/// Resident set size of process `pid`, in bytes.
pub fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("VmRSS")?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()?;
    Ok(kb * 1024)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch(
    data_dir: &Path,
    listen: std::net::SocketAddr,
    database_url: Option<&str>,
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("server.log"))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["server", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", &listen.to_string()]);
    if let Some(db) = database_url {
        cmd.args(["--database-url", db]);
    }
    Ok(cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?)
}
