//! Running QEMU: interactively for `run`, captured with a time bound for tests.

use crate::board::Qemu;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The oldest QEMU whose GICv4 model we test against.
const MIN_MAJOR: u32 = 10;

/// Checks that the board's QEMU exists and is recent enough.
pub fn check(qemu: &Qemu) -> Result<(), String> {
    let out = Command::new(&qemu.binary).arg("--version").output().map_err(|_| {
        format!(
            "`{}` not found. On Debian: add bookworm-backports and run\n  apt-get install -t bookworm-backports qemu-system-arm\n(or run `bash .ci/run`, which does it)",
            qemu.binary
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let major = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse::<u32>().ok());
    match major {
        Some(m) if m >= MIN_MAJOR => Ok(()),
        _ => Err(format!(
            "{} reports `{}`: QEMU {MIN_MAJOR} or newer is needed (Debian: apt-get install -t bookworm-backports qemu-system-arm)",
            qemu.binary,
            text.lines().next().unwrap_or("")
        )),
    }
}

/// The QEMU command line for booting `image` with `bundle` on the board.
pub fn command(qemu: &Qemu, image: &Path, bundle: &Path, extra: &[String]) -> Command {
    let mut cmd = Command::new(&qemu.binary);
    cmd.args([
        "-M",
        &qemu.machine,
        "-cpu",
        &qemu.cpu,
        "-smp",
        &qemu.smp.to_string(),
        "-m",
        &qemu.memory,
    ]);
    cmd.arg("-nographic");
    if let Some(dtb) = &qemu.dtb {
        cmd.arg("-dtb").arg(dtb);
    }
    cmd.args(&qemu.args);
    cmd.args(extra);
    cmd.arg("-kernel").arg(image).arg("-initrd").arg(bundle);
    cmd
}

/// What a captured run produced.
pub struct Outcome {
    /// Everything QEMU printed (the hypervisor's and the guests' consoles).
    pub output: String,
    /// QEMU's exit code, or `None` if it was killed.
    pub exit_code: Option<i32>,
    /// Whether the time bound killed it.
    pub timed_out: bool,
}

/// Runs `cmd` with output captured, killing it after `timeout` or as soon as
/// `stop_when(output)` holds.
pub fn run_captured(
    cmd: Command,
    timeout: Duration,
    stop_when: &dyn Fn(&str) -> bool,
) -> Result<Outcome, String> {
    run_typing(cmd, timeout, stop_when, &[])
}

/// One step of what is typed on QEMU's console: once the previous steps
/// are done and the output's complete lines contain `after` (anywhere, so
/// the texts of one script must differ), `keys` are written to QEMU's
/// standard input (the serial console under `-nographic`).
pub struct Typed<'a> {
    /// Text to wait for.
    pub after: &'a str,
    /// Bytes to type then.
    pub keys: &'a [u8],
}

/// [`run_captured`], typing `script` on the console as its steps' texts
/// appear.
pub fn run_typing(
    mut cmd: Command,
    timeout: Duration,
    stop_when: &dyn Fn(&str) -> bool,
    script: &[Typed<'_>],
) -> Result<Outcome, String> {
    cmd.stdin(if script.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("starting QEMU: {e}"))?;
    let mut stdin = child.stdin.take();
    let mut step = 0;
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut readers = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let buf = Arc::clone(&buf);
        readers.push(std::thread::spawn(move || {
            let mut stream = stream;
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        }));
    }
    let start = Instant::now();
    let (mut timed_out, mut stopped_early) = (false, false);
    let exit_code = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status.code();
        }
        let text = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
        // Only whole lines: a condition must never fire on the first half of
        // a line whose second half the checks then miss.
        let lines = complete_lines(&text);
        if let (Some(s), Some(input)) = (script.get(step), stdin.as_mut()) {
            if lines.contains(s.after) {
                use std::io::Write;
                input
                    .write_all(s.keys)
                    .and_then(|()| input.flush())
                    .map_err(|e| format!("typing on QEMU's console: {e}"))?;
                step += 1;
            }
        }
        if stop_when(lines) {
            stopped_early = true;
        } else if start.elapsed() > timeout {
            timed_out = true;
        }
        if stopped_early || timed_out {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        let _ = r.join();
    }
    let output = String::from_utf8_lossy(&buf.lock().unwrap()).replace('\r', "");
    Ok(Outcome {
        output,
        exit_code,
        timed_out,
    })
}

/// `text` up to and including its last newline.
fn complete_lines(text: &str) -> &str {
    &text[..text.rfind('\n').map_or(0, |i| i + 1)]
}

/// Runs `cmd` captured like [`run_captured`] (never stopped early), and
/// measures the wall time from the start to the first complete line that
/// contains `marker`, if one was printed.
pub fn run_timed(
    cmd: Command,
    timeout: Duration,
    marker: &str,
) -> Result<(Outcome, Option<f64>), String> {
    let seen_at: std::cell::Cell<Option<Instant>> = std::cell::Cell::new(None);
    let started = Instant::now();
    let outcome = run_captured(cmd, timeout, &|out: &str| {
        if seen_at.get().is_none() && out.contains(marker) {
            seen_at.set(Some(Instant::now()));
        }
        false
    })?;
    let seconds = match seen_at.get() {
        Some(at) => Some(at.duration_since(started).as_secs_f64()),
        // QEMU exited within one poll of printing it: its end is the bound.
        None if outcome.output.contains(marker) => Some(started.elapsed().as_secs_f64()),
        None => None,
    };
    Ok((outcome, seconds))
}

/// How the hypervisor ended a run, read from its console: what makes
/// `cargo xtask run` (and a scenario that expects a clean run) fail even
/// though QEMU itself exits 0 on the power-off that follows a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HypervisorEnd {
    /// It refused to start (a bad manifest, bundle or device tree): the
    /// `hypervisor: error:` line says why.
    Refused(String),
    /// It panicked and halted every CPU (QEMU keeps running, idle).
    Panicked(String),
}

impl HypervisorEnd {
    /// Whether QEMU will never do anything again (the CPUs are halted).
    pub fn halted(&self) -> bool {
        matches!(self, Self::Panicked(_))
    }
}

impl std::fmt::Display for HypervisorEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) => write!(f, "the hypervisor refused to start: {why}"),
            Self::Panicked(what) => write!(f, "the hypervisor panicked: {what}"),
        }
    }
}

/// Finds the end of the hypervisor in its console `output` (complete lines),
/// if it refused to start or panicked.
pub fn hypervisor_end(output: &str) -> Option<HypervisorEnd> {
    let mut scan = EndScanner::default();
    output.lines().find_map(|l| scan.line(l))
}

/// Reads the console line by line for the hypervisor's end.
#[derive(Default)]
pub struct EndScanner {
    /// The last `hypervisor: error:` reason, for the refusal that follows.
    error: Option<String>,
}

impl EndScanner {
    /// Takes one complete line; returns the end once it is seen.
    pub fn line(&mut self, line: &str) -> Option<HypervisorEnd> {
        // Only the hypervisor's own lines: a guest's console is prefixed
        // with its partition's name and cannot start a line with these.
        if let Some(why) = line.strip_prefix("hypervisor: error: ") {
            self.error = Some(why.trim_end().to_string());
        } else if line.starts_with("hypervisor: no partition started") {
            return Some(HypervisorEnd::Refused(
                self.error
                    .take()
                    .unwrap_or_else(|| line.trim_end().to_string()),
            ));
        } else if line.starts_with("[hv cpu") && line.contains("] PANIC: ") {
            return Some(HypervisorEnd::Panicked(line.trim_end().to_string()));
        }
        None
    }
}

/// Runs `cmd` on the user's terminal (`cargo xtask run`): QEMU's console
/// output is passed through as it comes while its lines are watched for
/// the hypervisor's end; typing goes straight to QEMU. A hypervisor that
/// panicked halts every CPU, so QEMU is stopped then instead of idling.
/// Returns QEMU's exit status and the end seen, if any.
pub fn run_watched(
    mut cmd: Command,
) -> Result<(std::process::ExitStatus, Option<HypervisorEnd>), String> {
    use std::io::Write;
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|e| format!("starting QEMU: {e}"))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or("QEMU's output was not captured")?;
    let end = Arc::new(Mutex::new(None::<HypervisorEnd>));
    let seen = Arc::clone(&end);
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        let mut line = Vec::new();
        let mut scan = EndScanner::default();
        let out = std::io::stdout();
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let mut lock = out.lock();
            let _ = lock.write_all(&chunk[..n]).and_then(|()| lock.flush());
            for &b in &chunk[..n] {
                if b != b'\n' {
                    // One line at a time is all the scanner needs.
                    if line.len() < 4096 {
                        line.push(b);
                    }
                    continue;
                }
                let text = String::from_utf8_lossy(&line).replace('\r', "");
                line.clear();
                let mut seen = seen.lock().unwrap();
                if seen.is_none() {
                    *seen = scan.line(&text);
                }
            }
        }
    });
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if end
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(HypervisorEnd::halted)
        {
            // Let the panic's last lines reach the terminal first.
            std::thread::sleep(Duration::from_millis(300));
            let _ = child.kill();
            break child.wait().map_err(|e| e.to_string())?;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = reader.join();
    let end = end.lock().unwrap().clone();
    Ok((status, end))
}

#[cfg(test)]
mod tests {
    use super::{complete_lines, hypervisor_end, HypervisorEnd};

    #[test]
    fn a_refused_manifest_is_an_end_with_its_reason() {
        let out = "PSCI     ...\nhypervisor: error: manifest: partition \"beta\": field cpus: CPU 1 is taken\nhypervisor: no partition started; powering off\n";
        assert_eq!(
            hypervisor_end(out),
            Some(HypervisorEnd::Refused(
                "manifest: partition \"beta\": field cpus: CPU 1 is taken".into()
            ))
        );
    }

    #[test]
    fn a_panic_is_an_end_that_halts() {
        let out = "[alpha] tick 1\n\n[hv cpu2] PANIC: panicked at src/x.rs:1:1: boom\n[hv cpu2] halting all CPUs\n";
        let end = hypervisor_end(out).expect("a panic");
        assert!(end.halted());
        assert!(end.to_string().contains("boom"));
    }

    #[test]
    fn a_clean_run_and_a_guest_imitating_the_hypervisor_are_not_ends() {
        assert_eq!(
            hypervisor_end("[alpha] PASS all\nhypervisor: all partitions stopped; powering off\n"),
            None
        );
        assert_eq!(
            hypervisor_end(
                "[alpha] hypervisor: no partition started\n[alpha] [hv cpu0] PANIC: x\n"
            ),
            None
        );
    }

    #[test]
    fn a_partial_last_line_is_not_seen() {
        assert_eq!(complete_lines("a\nb\n[alpha] PASS door"), "a\nb\n");
        assert_eq!(complete_lines("no newline yet"), "");
        assert_eq!(complete_lines("done\n"), "done\n");
    }
}
