//! A real nginx with the RTMP module, for the RTMP push and relay tests.

use std::time::Duration;

use super::closed_port;

/// A real nginx with the RTMP module on a free loopback port, killed when dropped.
pub struct Nginx {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl Nginx {
    /// Starts on a free port.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts on a free port; with `on_publish`, every push is first asked of that URL
    /// (nginx-rtmp POSTs the push's name and query; anything but a 2xx refuses it), as a relay
    /// with push authentication does.
    ///
    /// nginx cannot report a port it picked, so it is given one that was free a moment ago;
    /// if something took it meanwhile, nginx fails to bind and starts again on another.
    pub fn start_with(on_publish: Option<&str>) -> Self {
        let mut taken = Vec::new();
        for _ in 0..5 {
            let port = closed_port();
            match Self::launch(port, on_publish) {
                Ok(nginx) => return nginx,
                Err(log) => taken.push((port, log)),
            }
        }
        panic!("nginx found every port taken: {taken:#?}")
    }

    /// Starts on `port` (to bring a server back where it was).
    pub fn start_on(port: u16) -> Self {
        Self::launch(port, None).unwrap_or_else(|log| panic!("port {port} is taken: {log}"))
    }

    /// nginx listening on `port`, or its log if the port was taken.
    fn launch(port: u16, on_publish: Option<&str>) -> Result<Self, String> {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().display().to_string();
        let on_publish = on_publish
            .map(|url| format!("on_publish {url};"))
            .unwrap_or_default();
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; worker_processes 1;
pid {prefix}/nginx.pid; error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;
  application live {{ live on; allow publish 127.0.0.1; deny publish all;
                     allow play 127.0.0.1; deny play all; {on_publish} }} }} }}
"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = std::process::Command::new("nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .stderr(stderr)
            .spawn()
            .expect("nginx with the RTMP module: run `make setup`");
        let mut nginx = Self {
            port,
            dir,
            child: None,
        };
        // Ready once nginx itself listens: something else may answer on a port it failed to take.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !listens(child.id(), port) {
            let log = || {
                let stderr = std::fs::read_to_string(nginx.dir.path().join("stderr.log"));
                format!("{}{}", nginx.error_log(), stderr.unwrap_or_default())
            };
            if child.try_wait().unwrap().is_some() {
                let log = log();
                assert!(
                    log.contains("Address already in use"),
                    "nginx exited: {log}"
                );
                return Err(log);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nginx did not listen on {port}: {}", log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx.child = Some(child);
        Ok(nginx)
    }

    pub fn url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.port)
    }

    /// Kills nginx at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether process `pid` holds a socket listening on 127.0.0.1:`port` (read from /proc: the
/// listening socket's inode among the process's descriptors).
fn listens(pid: u32, port: u16) -> bool {
    let local = format!("0100007F:{port:04X}");
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let inodes: Vec<String> = tcp
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && f[1] == local && f[3] == "0A")
        .map(|f| format!("socket:[{}]", f[9]))
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
}
