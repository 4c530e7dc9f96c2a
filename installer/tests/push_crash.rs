//! Crash recovery of `airlift-install push`: the real binary is killed with SIGKILL at random
//! moments (verification, preflight, mid-blob, between manifests), at least 10 times. After every
//! kill, each tag that exists in the registry can be pulled whole by skopeo (a tag never points at
//! something incomplete). Then a re-run completes, skopeo verifies every relocated image by
//! digest, and one more run sends no blob bytes.

#![allow(clippy::unwrap_used)]

mod push_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use airlift_testkit::registry::TestRegistry;
use push_support::*;

/// splitmix64, seeded from the clock; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn push_killed_at_random_moments_resumes_and_completes() {
    let e = env(16 << 20);
    let seed = std::env::var("AIRLIFT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash seed: {seed} (replay with AIRLIFT_CRASH_SEED={seed})");
    let mut rng = Rng(seed);

    // How long a whole push takes here (the first run warms the page cache; each push hashes
    // the blobs it sends while they stream).
    let mut scratch = TestRegistry::plain();
    let o = push_cmd(&e, &scratch, &[]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    scratch.wipe();
    let t = Instant::now();
    let o = push_cmd(&e, &scratch, &[]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let full = t.elapsed().max(Duration::from_millis(200));
    drop(scratch);
    eprintln!("a whole push takes {full:?}");

    let mut reg = TestRegistry::plain();
    let mut kills = 0;
    let mut rounds = 0;
    while kills < 10 {
        rounds += 1;
        assert!(
            rounds <= 40,
            "could not interrupt the push 10 times in 40 rounds ({kills} kills)"
        );
        let at = Duration::from_micros(rng.next() % (full.as_micros() as u64 * 9 / 10 + 1));
        let mut child = push_cmd(&e, &reg, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let status = child.wait().unwrap();
        let complete = existing_tags_are_complete(&reg, e.dir.path());
        eprintln!(
            "round {rounds}: {} after {at:?} ({status}); {complete} complete tags",
            if finished {
                "finished before the kill"
            } else {
                "killed"
            }
        );
        if finished {
            // Nothing left to interrupt: start over from an empty registry.
            assert!(status.success(), "an uninterrupted push must succeed");
            reg.wipe();
        }
    }

    let o = push_cmd(&e, &reg, &["--output", "json"]).output().unwrap();
    assert!(o.status.success(), "the re-run completes: {}", stderr(&o));
    verify_json_report(&reg, &o.stdout, e.dir.path());

    let o = push_cmd(&e, &reg, &["--output", "json"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bytesPushed"], 0, "{v}");
}
