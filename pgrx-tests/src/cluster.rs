//! Throwaway PostgreSQL clusters for tests and the demo.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Preload pg_cron (and make `cron.database_name` the test database).
    pub pg_cron: bool,
    /// Extra postgresql.conf lines.
    pub extra_conf: Vec<String>,
}

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    bindir: PathBuf,
    as_postgres: bool,
    keep: bool,
}

fn pg_bindir() -> PathBuf {
    let pg_config = std::env::var("ZDM_PG_CONFIG").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
    let out = Command::new(&pg_config)
        .arg("--bindir")
        .output()
        .expect("pg_config runs");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    /// initdb + start on a free loopback port. Panics with the server log on failure.
    pub fn start(opts: &ClusterOptions) -> Cluster {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("zdm-cluster-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let as_postgres = running_as_root();
        let c = Cluster {
            dir,
            port: free_port(),
            bindir: pg_bindir(),
            as_postgres,
            keep: std::env::var("ZDM_KEEP_CLUSTER").is_ok(),
        };
        if as_postgres {
            let ok = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&c.dir)
                .status()
                .unwrap();
            assert!(ok.success(), "chown of the cluster directory");
        }
        c.pg(
            "initdb",
            &[
                "-D",
                c.data().to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let mut conf = vec![
            format!("port = {}", c.port),
            "listen_addresses = '127.0.0.1'".into(),
            format!("unix_socket_directories = '{}'", c.dir.display()),
            "max_connections = 60".into(),
            "fsync = off".into(),
            "full_page_writes = off".into(),
            "shared_buffers = 256MB".into(),
            "max_wal_size = 4GB".into(),
            "log_min_messages = warning".into(),
            "log_lock_waits = on".into(),
            "deadlock_timeout = 1s".into(),
        ];
        if opts.pg_cron {
            conf.push("shared_preload_libraries = 'pg_cron'".into());
            conf.push("cron.database_name = 'postgres'".into());
            // pg_cron's job connections go through the socket, not localhost.
            conf.push(format!("cron.host = '{}'", c.dir.display()));
        }
        conf.extend(opts.extra_conf.iter().cloned());
        let conf_path = c.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str("\n# pg_zdm harness\n");
        text.push_str(&conf.join("\n"));
        text.push('\n');
        c.write_as_owner(&conf_path, &text);
        c.start_server();
        c
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn write_as_owner(&self, path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        if self.as_postgres {
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(path)
                .status()
                .unwrap();
        }
    }

    /// A server binary's command, run as `postgres` when we are root.
    fn command(&self, tool: &str) -> Command {
        let bin = self.bindir.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        }
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        if !out.status.success() {
            panic!(
                "{tool} {args:?} failed:\n{}\n{}\nserver log:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
        }
    }

    pub fn start_server(&self) {
        self.pg(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                self.log().to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: a crash, as far as the database is concerned.
    pub fn crash(&self) {
        self.pg(
            "pg_ctl",
            &["-D", self.data().to_str().unwrap(), "-m", "immediate", "-w", "stop"],
        );
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} application_name=zdm_harness",
            self.port
        )
    }

    pub fn connect(&self) -> postgres::Client {
        self.connect_db("postgres")
    }

    pub fn connect_db(&self, db: &str) -> postgres::Client {
        let mut last = None;
        for _ in 0..50 {
            match postgres::Client::connect(&self.url(db), postgres::NoTls) {
                Ok(c) => return c,
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
        panic!("cannot connect to the test cluster: {last:?}");
    }

    /// A streaming standby of this cluster on its own port (pg_basebackup -R),
    /// with extra postgresql.conf lines (e.g. recovery_min_apply_delay).
    pub fn standby(&self, extra_conf: &[&str]) -> Cluster {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("zdm-standby-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if self.as_postgres {
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .status()
                .unwrap();
        }
        let s = Cluster {
            dir,
            port: free_port(),
            bindir: self.bindir.clone(),
            as_postgres: self.as_postgres,
            keep: self.keep,
        };
        let port = self.port.to_string();
        s.pg(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                s.data().to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "--checkpoint=fast",
            ],
        );
        let conf_path = s.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(&format!(
            "\n# standby\nport = {}\nunix_socket_directories = '{}'\nhot_standby = on\n{}\n",
            s.port,
            s.dir.display(),
            extra_conf.join("\n")
        ));
        // A standby must not run pg_cron's scheduler.
        text = text.replace("shared_preload_libraries = 'pg_cron'", "");
        s.write_as_owner(&conf_path, &text);
        s.start_server();
        s
    }

    /// Change postgresql.conf settings of a running cluster and reload.
    pub fn set_conf(&self, line: &str) {
        let conf_path = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).unwrap();
        text.push_str(line);
        text.push('\n');
        self.write_as_owner(&conf_path, &text);
        self.pg("pg_ctl", &["-D", self.data().to_str().unwrap(), "reload"]);
    }

    /// `pg_dump --schema-only` of database postgres with `extra` arguments
    /// (`--table t`, `--exclude-schema s`), for comparing schemas.
    pub fn schema_only(&self, extra: &[&str]) -> String {
        let out = Command::new(self.tool("pg_dump"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "--schema-only",
            ])
            .args(extra)
            .arg("postgres")
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // \restrict lines carry a random key per run: not part of the schema.
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Path of a server tool (pg_dump, psql...) of the same installation.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("keeping cluster at {} (port {})", self.dir.display(), self.port);
            return;
        }
        let _ = self
            .command("pg_ctl")
            .args(["-D", self.data().to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
