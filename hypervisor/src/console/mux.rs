//! One physical console shared by the hypervisor and every partition.
//!
//! Output: each partition's text is shown line by line with its name in
//! front, so lines of different partitions never mix. A guest's bytes
//! never reach the operator's terminal raw unless the operator is typing
//! into that guest: control bytes, escape sequences included (which could
//! move the cursor over another partition's lines, or worse), are shown as
//! `?`; only the partition with the focus that was typed into keeps
//! bell, backspace and the few escape sequences its shell's line editing
//! needs, and only while they keep the cursor on its own line, right of
//! its `[name] ` prefix, so no guest can redraw another's line or forge a
//! prefix (carriage return stays `?`). A partition someone
//! is typing into shows its unfinished line at once (a shell's prompt and
//! the echo of each key); if another source prints meanwhile, the
//! unfinished line is ended first and continued under a fresh prefix.
//!
//! Input: bytes typed go to the partition that has the input focus, the
//! first one at boot. `Ctrl-\` moves the focus to the next partition, and
//! `Ctrl-]` asks the hypervisor for its counters (neither byte is
//! delivered; QEMU's `-nographic` keeps `Ctrl-A` for itself).
#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// The key that moves the input focus: Ctrl-\ (FS, 0x1c).
pub const SWITCH_KEY: u8 = 0x1c;
/// The key that prints the hypervisor's counters: Ctrl-] (GS, 0x1d).
pub const COUNTERS_KEY: u8 = 0x1d;

/// What a typed byte does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Deliver the byte to partition `index`.
    Deliver { index: usize, byte: u8 },
    /// The focus moved to partition `index`.
    Focus { index: usize },
    /// Print the hypervisor's counters.
    Counters,
    /// Nothing to do (no partitions).
    Ignore,
}

/// The console's state: whose unfinished line is on screen, who has the
/// input focus.
#[derive(Debug, Default)]
pub struct ConsoleMux {
    /// The partition whose unfinished line the cursor sits after.
    mid_line: Option<usize>,
    /// The partition typed bytes go to.
    focus: usize,
    /// Bytes of the unfinished line after its prefix (see [`sanitize_at`]).
    column: usize,
}

impl ConsoleMux {
    /// A console at the start of a line, focus on partition 0.
    pub const fn new() -> Self {
        Self {
            mid_line: None,
            focus: 0,
            column: 0,
        }
    }

    /// The partition that has the input focus.
    pub fn focus(&self) -> usize {
        self.focus
    }

    /// A finished line `text` of partition `index` called `name`: appends
    /// what the physical console must print to `out`.
    /// `terminal`: the operator is typing into this partition (see
    /// [`sanitize`]).
    pub fn line(
        &mut self,
        index: usize,
        name: &str,
        text: &[u8],
        terminal: bool,
        out: &mut Vec<u8>,
    ) {
        self.begin(index, name, out);
        sanitize_at(text, terminal, &mut self.column, out);
        out.extend_from_slice(b"\r\n");
        self.mid_line = None;
    }

    /// Unfinished output `text` of partition `index`, shown now.
    pub fn partial(
        &mut self,
        index: usize,
        name: &str,
        text: &[u8],
        terminal: bool,
        out: &mut Vec<u8>,
    ) {
        if text.is_empty() {
            return;
        }
        self.begin(index, name, out);
        sanitize_at(text, terminal, &mut self.column, out);
        self.mid_line = Some(index);
    }

    /// The hypervisor is about to print whole lines of its own.
    pub fn hypervisor(&mut self, out: &mut Vec<u8>) {
        if self.mid_line.take().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }

    /// A byte typed on the console, with `partitions` partitions present.
    pub fn input(&mut self, byte: u8, partitions: usize) -> Input {
        if partitions == 0 {
            return Input::Ignore;
        }
        self.focus = self.focus.min(partitions - 1);
        if byte == SWITCH_KEY {
            self.focus = (self.focus + 1) % partitions;
            Input::Focus { index: self.focus }
        } else if byte == COUNTERS_KEY {
            Input::Counters
        } else {
            Input::Deliver {
                index: self.focus,
                byte,
            }
        }
    }

    /// Ends another source's unfinished line, and starts this partition's
    /// line with its prefix unless the cursor already sits in it.
    fn begin(&mut self, index: usize, name: &str, out: &mut Vec<u8>) {
        match self.mid_line {
            Some(i) if i == index => return,
            Some(_) => out.extend_from_slice(b"\r\n"),
            None => {}
        }
        out.push(b'[');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"] ");
        self.column = 0;
    }
}

/// Appends a guest's `text` to `out` as the physical terminal may see it:
/// printable ASCII and tab as they are, every other byte as `?`. With
/// `terminal` (the operator is typing into this guest) also bell,
/// backspace and the few escape sequences a shell's line editing needs
/// ([`kept_escape`]): none of them can leave the guest's own line or move
/// the cursor back over its `[name] ` prefix, so the guest cannot redraw
/// another partition's line or forge a prefix. Every other escape sequence
/// is dropped whole (ECMA-48: `ESC [` parameters, intermediates and a
/// final byte, or `ESC` and one byte) rather than shown as `?[6n`; a
/// sequence split across two calls loses only its ESC. Carriage return is
/// shown as `?` (it would bring the cursor back over the prefix).
pub fn sanitize(text: &[u8], terminal: bool, out: &mut Vec<u8>) {
    let mut column = 0;
    sanitize_at(text, terminal, &mut column, out);
}

/// [`sanitize`], with `column` the bytes the guest's line holds after its
/// prefix so far (a lower bound of the cursor's distance from the prefix,
/// kept up to date): backspace and cursor-back may not go below zero.
fn sanitize_at(text: &[u8], terminal: bool, column: &mut usize, out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        if b == 0x1b {
            let len = escape_len(&text[i..]);
            let sequence = text.get(i..i + len).unwrap_or_default();
            if terminal && kept_escape(sequence, column) {
                out.extend_from_slice(sequence);
            }
            i += len;
            continue;
        }
        i += 1;
        match b {
            0x20..0x7f | b'\t' => {
                out.push(b);
                // A tab moves at least one column: a lower bound.
                *column = column.saturating_add(1);
            }
            0x07 if terminal => out.push(b),
            0x08 if terminal => {
                // Backspace only within the guest's own text.
                if *column > 0 {
                    out.push(b);
                    *column -= 1;
                }
            }
            _ => {
                out.push(b'?');
                *column = column.saturating_add(1);
            }
        }
    }
}

/// Whether the terminal may see `sequence` (an escape sequence) from the
/// guest being typed into, updating `column`: only complete CSIs with
/// decimal parameters that keep the cursor on the line and right of the
/// prefix. SGR (`m`, colours), cursor position report request (`5n`, `6n`:
/// busybox asks), erase to the end of the line (`K`, `0K`), cursor forward
/// (`C`: `column` stays, a lower bound) and cursor back (`D`) by at most
/// `column`. Everything else (cursor up/down or absolute, erase display or
/// whole line, scrolling, save/restore, private modes, resets) is dropped.
pub fn kept_escape(sequence: &[u8], column: &mut usize) -> bool {
    let [0x1b, b'[', body @ .., last] = sequence else {
        return false;
    };
    if !body.iter().all(|b| b.is_ascii_digit() || *b == b';') {
        return false;
    }
    let count = || -> Option<usize> {
        if body.contains(&b';') || body.len() > 4 {
            return None;
        }
        let n = body
            .iter()
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        Some(n.max(1))
    };
    match last {
        b'm' => true,
        b'n' => matches!(body, b"5" | b"6"),
        b'K' => matches!(body, b"" | b"0"),
        b'C' => count().is_some(),
        b'D' => match count() {
            Some(n) if n <= *column => {
                *column -= n;
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// Length of the escape sequence at the start of `text` (which starts with
/// ESC): a CSI (`ESC [`, parameter bytes 0x30-0x3f, intermediate bytes
/// 0x20-0x2f, one final byte 0x40-0x7e), or ESC and the next byte; a
/// sequence cut short by the end of `text` runs to that end.
fn escape_len(text: &[u8]) -> usize {
    match text.get(1) {
        None => 1,
        Some(b'[') => {
            let body = text[2..]
                .iter()
                .position(|b| !(0x20..0x40).contains(b))
                .map_or(text.len(), |p| p + 2);
            match text.get(body) {
                Some(0x40..=0x7e) => body + 1,
                _ => body,
            }
        }
        Some(_) => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(f: impl FnOnce(&mut ConsoleMux, &mut Vec<u8>), m: &mut ConsoleMux) -> String {
        let mut out = Vec::new();
        f(m, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn whole_lines_get_their_partitions_name() {
        let mut m = ConsoleMux::new();
        assert_eq!(
            text_of(|m, o| m.line(0, "alpha", b"hello", true, o), &mut m),
            "[alpha] hello\r\n"
        );
        assert_eq!(
            text_of(|m, o| m.line(1, "beta", b"tick", true, o), &mut m),
            "[beta] tick\r\n"
        );
    }

    #[test]
    fn an_unfinished_line_is_continued_then_finished() {
        let mut m = ConsoleMux::new();
        assert_eq!(
            text_of(|m, o| m.partial(0, "a", b"~ # ", true, o), &mut m),
            "[a] ~ # "
        );
        assert_eq!(
            text_of(|m, o| m.partial(0, "a", b"l", true, o), &mut m),
            "l"
        );
        assert_eq!(
            text_of(|m, o| m.line(0, "a", b"s", true, o), &mut m),
            "s\r\n"
        );
        assert_eq!(
            text_of(|m, o| m.line(0, "a", b"bin", true, o), &mut m),
            "[a] bin\r\n"
        );
    }

    #[test]
    fn another_source_ends_an_unfinished_line_first() {
        let mut m = ConsoleMux::new();
        text_of(|m, o| m.partial(0, "a", b"~ # ", true, o), &mut m);
        assert_eq!(
            text_of(|m, o| m.line(1, "b", b"ping", true, o), &mut m),
            "\r\n[b] ping\r\n"
        );
        // The interrupted line goes on under a fresh prefix.
        assert_eq!(
            text_of(|m, o| m.line(0, "a", b"ls", true, o), &mut m),
            "[a] ls\r\n"
        );
        text_of(|m, o| m.partial(0, "a", b"x", true, o), &mut m);
        assert_eq!(text_of(|m, o| m.hypervisor(o), &mut m), "\r\n");
        assert_eq!(text_of(|m, o| m.hypervisor(o), &mut m), "");
        assert_eq!(text_of(|m, o| m.partial(0, "a", b"", true, o), &mut m), "");
    }

    #[test]
    fn escape_sequences_reach_the_terminal_only_from_the_guest_being_typed_into() {
        let mut m = ConsoleMux::new();
        let text = b"\x1b[2J\x08\x07\t\x01\xff";
        let mut out = Vec::new();
        m.line(0, "a", text, false, &mut out);
        assert_eq!(out, b"[a] ??\t??\r\n".to_vec());
        out.clear();
        m.line(0, "a", text, true, &mut out);
        // Erase-display is never kept; backspace at the prefix is dropped.
        assert_eq!(out, b"[a] \x07\t??\r\n".to_vec());
    }

    #[test]
    fn a_terminal_query_is_dropped_whole_unless_the_guest_is_typed_into() {
        // busybox ash's prompt asks for the cursor position.
        let prompt = b"~ # \x1b[6n";
        let mut out = Vec::new();
        sanitize(prompt, false, &mut out);
        assert_eq!(out, b"~ # ".to_vec());
        out.clear();
        sanitize(prompt, true, &mut out);
        assert_eq!(out, prompt.to_vec());
        // Other forms: parameters and intermediates, a two-byte escape, a
        // sequence cut short, a lone ESC at the end.
        for (text, shown) in [
            (&b"a\x1b[1;31mred\x1b[0m"[..], &b"ared"[..]),
            (b"a\x1b[?25lb", b"ab"),
            (b"a\x1bcb", b"ab"),
            (b"a\x1b[12", b"a"),
            (b"a\x1b", b"a"),
            (b"a\x1b[\x01b", b"a?b"),
        ] {
            out.clear();
            sanitize(text, false, &mut out);
            assert_eq!(out, shown.to_vec(), "{text:?}");
        }
    }

    #[test]
    fn the_switch_key_cycles_the_focus_and_is_not_delivered() {
        let mut m = ConsoleMux::new();
        assert_eq!(
            m.input(b'x', 2),
            Input::Deliver {
                index: 0,
                byte: b'x'
            }
        );
        assert_eq!(m.input(SWITCH_KEY, 2), Input::Focus { index: 1 });
        assert_eq!(
            m.input(b'y', 2),
            Input::Deliver {
                index: 1,
                byte: b'y'
            }
        );
        assert_eq!(m.input(SWITCH_KEY, 2), Input::Focus { index: 0 });
        assert_eq!(m.focus(), 0);
        assert_eq!(m.input(b'z', 0), Input::Ignore);
    }

    #[test]
    fn the_counters_key_is_not_delivered_and_keeps_the_focus() {
        let mut m = ConsoleMux::new();
        m.input(SWITCH_KEY, 2);
        assert_eq!(m.input(COUNTERS_KEY, 2), Input::Counters);
        assert_eq!(m.focus(), 1);
    }

    #[test]
    fn a_focus_past_the_partitions_is_clamped() {
        let mut m = ConsoleMux::new();
        m.input(SWITCH_KEY, 3);
        m.input(SWITCH_KEY, 3);
        assert_eq!(
            m.input(b'q', 1),
            Input::Deliver {
                index: 0,
                byte: b'q'
            }
        );
    }

    #[test]
    fn the_guest_typed_into_cannot_leave_its_line_or_redraw_another() {
        for sequence in [
            &b"\x1b[A"[..],
            b"\x1b[3B",
            b"\x1b[1;1H",
            b"\x1b[5G",
            b"\x1b[2J",
            b"\x1b[2K",
            b"\x1b[1K",
            b"\x1bM",
            b"\x1b7",
            b"\x1b8",
            b"\x1b[s",
            b"\x1b[u",
            b"\x1b[?1049h",
            b"\x1b[S",
            b"\x1bc",
        ] {
            let mut m = ConsoleMux::new();
            let mut out = Vec::new();
            m.partial(0, "a", b"abc", true, &mut out);
            m.partial(0, "a", sequence, true, &mut out);
            assert_eq!(out, b"[a] abc".to_vec(), "{sequence:?} was kept");
        }
        // A carriage return would bring the cursor back over the prefix.
        let mut m = ConsoleMux::new();
        let mut out = Vec::new();
        m.line(0, "a", b"x\r[b] forged", true, &mut out);
        assert_eq!(out, b"[a] x?[b] forged\r\n".to_vec());
    }

    #[test]
    fn no_guest_can_forge_the_hypervisors_or_anothers_prefix() {
        // Each attempt tries to bring the cursor back over `[a] ` (or up to
        // the line above, or erase it) and print a forged prefix there.
        let attempts: [&[u8]; 9] = [
            b"\r",
            b"\x1b[A\r",
            b"\x1b[2K\r",
            b"\x1b[H",
            b"\x08\x08\x08\x08\x08\x08\x08\x08",
            b"\x1b[99D",
            b"\x1b[1G",
            b"\x1b[2K\x1b[1;1H",
            b"\x1b7\x1b[A\x1b8",
        ];
        for forged in [
            &b"[hv cpu0] INFO  partition b stopped"[..],
            b"[b] rm -rf done",
        ] {
            for attempt in attempts {
                for terminal in [false, true] {
                    let mut m = ConsoleMux::new();
                    let mut out = Vec::new();
                    m.line(1, "b", b"real", false, &mut out);
                    m.partial(0, "a", b"ls", terminal, &mut out);
                    m.partial(0, "a", attempt, terminal, &mut out);
                    m.line(0, "a", forged, terminal, &mut out);
                    let own = out.strip_prefix(&b"[b] real\r\n"[..]).unwrap();
                    // One line, under `[a] `, and the cursor never left it.
                    assert!(own.starts_with(b"[a] ls"), "{attempt:?}");
                    assert_eq!(own.iter().filter(|&&b| b == b'\n').count(), 1);
                    assert!(own.ends_with(b"\r\n"));
                    let body = &own[4..own.len() - 2];
                    assert_eq!(stays_on_its_line(body, 0), Ok(()), "{attempt:?} {terminal}");
                    // Backspacing over "ls" is allowed, never past it.
                    let backs = body.iter().filter(|&&b| b == 0x08).count();
                    assert!(backs <= 2, "{attempt:?}");
                }
            }
        }
    }

    #[test]
    fn backspace_and_cursor_back_stop_at_the_prefix() {
        let mut m = ConsoleMux::new();
        let mut out = Vec::new();
        m.partial(0, "a", b"ls", true, &mut out);
        m.partial(0, "a", b"\x08\x08\x08\x08[b] x", true, &mut out);
        assert_eq!(out, b"[a] ls\x08\x08[b] x".to_vec());
        out.clear();
        // 5 bytes after the prefix now: 6 back is refused, 5 kept, then
        // none.
        m.partial(0, "a", b"\x1b[6D\x1b[5D\x1b[D", true, &mut out);
        assert_eq!(out, b"\x1b[5D".to_vec());
        // A new prefix (another source printed) starts the count again.
        out.clear();
        m.hypervisor(&mut out);
        m.partial(0, "a", b"\x1b[D", true, &mut out);
        assert_eq!(out, b"\r\n[a] ".to_vec());
    }

    #[test]
    fn line_editing_sequences_still_reach_the_terminal() {
        // What busybox's line editing sends: cursor back and forward,
        // erase to the end of the line, colours, the position query.
        let text = b"~ # \x1b[6nlss\x08\x1b[K\x1b[2D\x1b[2C\x1b[1;32mok\x1b[0m";
        let mut m = ConsoleMux::new();
        let mut out = Vec::new();
        m.partial(0, "a", text, true, &mut out);
        let mut expected = b"[a] ".to_vec();
        expected.extend_from_slice(text);
        assert_eq!(out, expected);
    }

    /// A terminal's cursor column, fed the console's output: whether a
    /// guest's bytes ever put the cursor left of its prefix or off its line.
    fn stays_on_its_line(output: &[u8], prefix: usize) -> Result<(), String> {
        let mut column = 0usize;
        let mut i = 0;
        while let Some(&b) = output.get(i) {
            match b {
                0x1b => {
                    let len = escape_len(&output[i..]);
                    let sequence = &output[i..i + len];
                    let [0x1b, b'[', body @ .., last] = sequence else {
                        return Err(alloc::format!("escape {sequence:?} kept"));
                    };
                    let n: usize = core::str::from_utf8(body)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(1)
                        .max(1);
                    match last {
                        b'C' => column += n,
                        b'D' => column = column.saturating_sub(n),
                        b'm' | b'n' | b'K' => {}
                        _ => return Err(alloc::format!("escape {sequence:?} kept")),
                    }
                    i += len;
                    if column < prefix {
                        return Err(alloc::format!("cursor at column {column}"));
                    }
                    continue;
                }
                0x08 => column = column.saturating_sub(1),
                0x07 => {}
                b'\t' => column += 1,
                0x20..0x7f => column += 1,
                other => return Err(alloc::format!("byte {other:#x} kept")),
            }
            if column < prefix {
                return Err(alloc::format!("cursor at column {column}"));
            }
            i += 1;
        }
        Ok(())
    }

    proptest::proptest! {
        /// Whatever the guest being typed into writes, in however many
        /// pieces, the cursor stays on its line, right of its prefix.
        #[test]
        fn no_output_of_the_focused_guest_reaches_its_prefix(
            pieces in proptest::collection::vec(
                proptest::collection::vec(proptest::prop_oneof![
                    4 => proptest::prelude::any::<u8>(),
                    2 => proptest::sample::select(alloc::vec![0x1bu8, b'[', 0x08, b'D', b'C', b'A', b'H', b'K', b'2', b';', b'\r']),
                ], 0..24),
                1..6,
            ),
        ) {
            let mut m = ConsoleMux::new();
            let mut out = Vec::new();
            for piece in &pieces {
                m.partial(0, "a", piece, true, &mut out);
            }
            proptest::prop_assert!(out.is_empty() || out.starts_with(b"[a] "));
            let result = stays_on_its_line(out.get(4..).unwrap_or_default(), 0);
            proptest::prop_assert!(result.is_ok(), "{:?}: {:?}", result, out);
        }
    }
}
