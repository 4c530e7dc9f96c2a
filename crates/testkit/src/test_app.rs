//! The program every generated test image runs: a static Linux executable of a few dozen
//! instructions, for `amd64` and `arm64`, so a test image starts and turns ready on a real
//! cluster's kubelet (no shell, no libc, no network).
//!
//! Behaviour: with no argument it blocks `SIGTERM` and `SIGINT` and waits for one of them, then
//! exits 0 (a Deployment's container runs until the Pod is deleted, and stops at once when it
//! is: PID 1 in a container ignores signals it has no handler for, but receives blocked ones
//! through `rt_sigtimedwait`). With any argument it exits 0 at once (a Job's container runs to
//! completion: `args: ["once"]`).
//!
//! The machine code below was assembled with `llvm-mc` from the listed source; the ELF file
//! around it (one read-and-execute `PT_LOAD` segment, no sections) is built here. The tests run
//! the amd64 program on this machine and the arm64 one under `qemu-aarch64`.

/// Where generated images hold the program for `arch` (`amd64` or `arm64`).
pub fn path_in_image(arch: &str) -> String {
    format!("/opt/airlift/test-app-{}", supported(arch))
}

/// `arch` if the program exists for it, else `amd64`.
fn supported(arch: &str) -> &'static str {
    match arch {
        "arm64" | "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// Every architecture the program is built for.
pub const ARCHITECTURES: [&str; 2] = ["amd64", "arm64"];

/// x86-64 (Intel syntax):
/// ```text
///   mov rdi, [rsp]        ; argc
///   cmp rdi, 1
///   jg exit0
///   push 0x4002           ; sigset: SIGINT (2) and SIGTERM (15)
///   mov rsi, rsp
///   xor edi, edi          ; SIG_BLOCK
///   xor edx, edx
///   mov r10d, 8
///   mov eax, 14           ; rt_sigprocmask
///   syscall
/// wait:
///   mov rdi, rsp
///   xor esi, esi
///   xor edx, edx
///   mov r10d, 8
///   mov eax, 128          ; rt_sigtimedwait
///   syscall
///   test rax, rax
///   js wait               ; EINTR: wait again
/// exit0:
///   xor edi, edi
///   mov eax, 231          ; exit_group(0)
///   syscall
/// ```
const AMD64_CODE: [u8; 69] = [
    0x48, 0x8b, 0x3c, 0x24, 0x48, 0x83, 0xff, 0x01, 0x7f, 0x32, 0x68, 0x02, 0x40, 0x00, 0x00, 0x48,
    0x89, 0xe6, 0x31, 0xff, 0x31, 0xd2, 0x41, 0xba, 0x08, 0x00, 0x00, 0x00, 0xb8, 0x0e, 0x00, 0x00,
    0x00, 0x0f, 0x05, 0x48, 0x89, 0xe7, 0x31, 0xf6, 0x31, 0xd2, 0x41, 0xba, 0x08, 0x00, 0x00, 0x00,
    0xb8, 0x80, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x48, 0x85, 0xc0, 0x78, 0xe7, 0x31, 0xff, 0xb8, 0xe7,
    0x00, 0x00, 0x00, 0x0f, 0x05,
];

/// AArch64:
/// ```text
///   ldr x0, [sp]          // argc
///   cmp x0, #1
///   b.gt exit0
///   mov x1, #0x4002       // sigset: SIGINT (2) and SIGTERM (15)
///   str x1, [sp, #-16]!
///   mov x0, #0            // SIG_BLOCK
///   mov x1, sp
///   mov x2, #0
///   mov x3, #8
///   mov x8, #135          // rt_sigprocmask
///   svc #0
/// wait:
///   mov x0, sp
///   mov x1, #0
///   mov x2, #0
///   mov x3, #8
///   mov x8, #137          // rt_sigtimedwait
///   svc #0
///   cmp x0, #0
///   b.lt wait             // EINTR: wait again
/// exit0:
///   mov x0, #0
///   mov x8, #94           // exit_group(0)
///   svc #0
/// ```
const ARM64_CODE: [u8; 88] = [
    0xe0, 0x03, 0x40, 0xf9, 0x1f, 0x04, 0x00, 0xf1, 0x2c, 0x02, 0x00, 0x54, 0x41, 0x00, 0x88, 0xd2,
    0xe1, 0x0f, 0x1f, 0xf8, 0x00, 0x00, 0x80, 0xd2, 0xe1, 0x03, 0x00, 0x91, 0x02, 0x00, 0x80, 0xd2,
    0x03, 0x01, 0x80, 0xd2, 0xe8, 0x10, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4, 0xe0, 0x03, 0x00, 0x91,
    0x01, 0x00, 0x80, 0xd2, 0x02, 0x00, 0x80, 0xd2, 0x03, 0x01, 0x80, 0xd2, 0x28, 0x11, 0x80, 0xd2,
    0x01, 0x00, 0x00, 0xd4, 0x1f, 0x00, 0x00, 0xf1, 0x2b, 0xff, 0xff, 0x54, 0x00, 0x00, 0x80, 0xd2,
    0xc8, 0x0b, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4,
];

/// Where the one segment is loaded (64 KiB aligned, as arm64 kernels with 64 KiB pages need).
const BASE: u64 = 0x40_0000;
const EHDR: usize = 64;
const PHDR: usize = 56;

/// The static ELF executable for `arch` (`amd64`, or `arm64`; anything else gets amd64's).
pub fn executable(arch: &str) -> Vec<u8> {
    let (machine, code): (u16, &[u8]) = match supported(arch) {
        "arm64" => (183, &ARM64_CODE), // EM_AARCH64
        _ => (62, &AMD64_CODE),        // EM_X86_64
    };
    let size = (EHDR + PHDR + code.len()) as u64;
    let mut f = Vec::with_capacity(size as usize);
    // ELF header: 64-bit, little-endian, version 1, System V ABI.
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&machine.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
    f.extend_from_slice(&(BASE + (EHDR + PHDR) as u64).to_le_bytes()); // entry
    f.extend_from_slice(&(EHDR as u64).to_le_bytes()); // program headers
    f.extend_from_slice(&0u64.to_le_bytes()); // no section headers
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    f.extend_from_slice(&(EHDR as u16).to_le_bytes());
    f.extend_from_slice(&(PHDR as u16).to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes()); // one program header
    f.extend_from_slice(&64u16.to_le_bytes()); // section header size
    f.extend_from_slice(&0u16.to_le_bytes()); // no sections
    f.extend_from_slice(&0u16.to_le_bytes()); // no section names
                                              // PT_LOAD, read + execute, the whole file at BASE.
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&5u32.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&BASE.to_le_bytes());
    f.extend_from_slice(&BASE.to_le_bytes());
    f.extend_from_slice(&size.to_le_bytes());
    f.extend_from_slice(&size.to_le_bytes());
    f.extend_from_slice(&0x1_0000u64.to_le_bytes());
    f.extend_from_slice(code);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn write(dir: &std::path::Path, arch: &str) -> std::path::PathBuf {
        let p = dir.join(format!("test-app-{arch}"));
        std::fs::write(&p, executable(arch)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// `runner` is empty to run natively, else an emulator such as `qemu-aarch64`.
    fn check_behaviour(runner: &[&str], program: &std::path::Path) {
        let cmd = |args: &[&str]| {
            let mut c = match runner.split_first() {
                Some((emu, rest)) => {
                    let mut c = Command::new(emu);
                    c.args(rest).arg(program);
                    c
                }
                None => Command::new(program),
            };
            c.args(args).stdin(Stdio::null());
            c
        };
        // With an argument: exits 0 at once.
        let status = cmd(&["once"]).status().expect("the program starts");
        assert!(status.success(), "{} once: {status}", program.display());
        // Without: keeps running until SIGTERM, then exits 0 (and likewise SIGINT).
        for signal in ["TERM", "INT"] {
            let mut child = cmd(&[]).spawn().expect("the program starts");
            std::thread::sleep(Duration::from_millis(400));
            assert!(
                child.try_wait().unwrap().is_none(),
                "{} exited on its own",
                program.display()
            );
            let pid = child.id().to_string();
            let status = signal_and_wait(&mut child, signal, &pid);
            assert_eq!(status.code(), Some(0), "SIG{signal}: {status}");
        }
    }

    #[test]
    fn the_amd64_program_waits_for_a_signal_and_exits_zero() {
        let dir = tempfile::tempdir().unwrap();
        check_behaviour(&[], &write(dir.path(), "amd64"));
    }

    /// Needs `qemu-aarch64` (Debian's `qemu-user`, installed by scripts/deps.sh).
    #[test]
    fn the_arm64_program_waits_for_a_signal_and_exits_zero() {
        let dir = tempfile::tempdir().unwrap();
        check_behaviour(&["qemu-aarch64"], &write(dir.path(), "arm64"));
    }

    /// In a container the program is PID 1 of its PID namespace, which the kernel protects from
    /// signals it has no handler for; the runtime's SIGTERM must still stop it.
    #[test]
    fn as_pid_1_of_a_pid_namespace_it_stops_on_sigterm_from_outside() {
        let dir = tempfile::tempdir().unwrap();
        let program = write(dir.path(), "amd64");
        // Root makes the namespace directly; anyone else through a user namespace.
        let flags: &[&str] = if running_as_root() {
            &["--pid", "--fork"]
        } else {
            &["--user", "--map-root-user", "--pid", "--fork"]
        };
        let mut child = Command::new("unshare")
            .args(flags)
            .arg(&program)
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) starts");
        // Find the program: the child of `unshare` whose NSpid ends in 1.
        let start = Instant::now();
        let pid = loop {
            let found = std::fs::read_to_string(format!(
                "/proc/{}/task/{}/children",
                child.id(),
                child.id()
            ))
            .ok()
            .and_then(|c| c.split_whitespace().next().map(String::from));
            if let Some(pid) = found {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if status
                    .lines()
                    .any(|l| l.starts_with("NSpid:") && l.ends_with("\t1"))
                {
                    break pid;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the program did not start as PID 1"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(child.try_wait().unwrap().is_none(), "exited on its own");
        let status = signal_and_wait(&mut child, "TERM", &pid);
        assert_eq!(status.code(), Some(0), "{status}");
    }

    /// Sends SIG`signal` to `pid` and waits (at most 5 s) for `child` to exit.
    fn signal_and_wait(
        child: &mut std::process::Child,
        signal: &str,
        pid: &str,
    ) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args([format!("-{signal}").as_str(), pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "pid {pid} ignored SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn running_as_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
            .unwrap_or(false)
    }

    #[test]
    fn paths_and_headers_name_the_architecture() {
        assert_eq!(path_in_image("arm64"), "/opt/airlift/test-app-arm64");
        assert_eq!(path_in_image("amd64"), "/opt/airlift/test-app-amd64");
        assert_eq!(executable("arm64")[18], 183);
        assert_eq!(executable("amd64")[18], 62);
        assert_eq!(&executable("amd64")[..4], b"\x7fELF");
    }
}
