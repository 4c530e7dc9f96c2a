#![allow(clippy::unwrap_used, missing_docs)]
mod push_support;
use airlift_testkit::registry::TestRegistry;
use push_support::*;

#[test]
fn probe() {
    for size in [16u64 << 20, 256 << 20] {
        let t = std::time::Instant::now();
        let e = env(size);
        eprintln!("env {size}: {:?}, bundle {} bytes", t.elapsed(), std::fs::metadata(&e.bundle).unwrap().len());
        let reg = TestRegistry::plain();
        for round in 0..2 {
            let c = push_cmd(&e, &reg, &["--output", "json"]);
            let mut timed = std::process::Command::new("/usr/bin/time");
            timed.arg("-f").arg("RSS_KIB=%M SECS=%e").arg(c.get_program());
            timed.args(c.get_args());
            for (k, v) in c.get_envs() {
                match v { Some(v) => { timed.env(k, v); } None => { timed.env_remove(k); } }
            }
            let o = timed.output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            eprintln!("size {size} round {round}: {} pushed={} skipped={} mounted={}", err.lines().last().unwrap(), v["bytesPushed"], v["bytesSkipped"], v["bytesMounted"]);
        }
    }
}
