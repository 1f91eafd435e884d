//! Mutants: small, seeded changes to a kernel's WGSL, to show that the
//! suite catches broken kernels (`postergrad gradcheck --mutants N`). Each
//! mutant changes one token of one code line of the kernel written out in
//! one piece (`shaders::standalone`, so library functions are mutated for
//! that kernel alone):
//! - arithmetic and comparison operators (`+` ↔ `-`, `*` ↔ `/`, `<` ↔ `<=`,
//!   `>` ↔ `>=`, `==` ↔ `!=`, `&&` ↔ `||`);
//! - integer literals off by one (`4u` → `3u`, `5u`);
//! - `min` ↔ `max`;
//! - vector components (`.x` → `.y`, …).
//!
//! A mutant the suite does not catch either breaks nothing (an *equivalent*
//! mutant: a bound the next line checks again, a clamp that cannot bind) or
//! shows a gap in the checks. Reviewed equivalent mutants are listed, one
//! line of reasoning each, in `tests/equivalent_mutants.txt`.

use crate::rng::Rng;

/// One change to one line of a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mutant {
    pub kernel: &'static str,
    /// 1-based line of the kernel written out in one piece.
    pub line: usize,
    pub before: String,
    pub after: String,
}

impl Mutant {
    /// `source` with this mutant applied.
    pub fn apply(&self, source: &str) -> String {
        source
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i + 1 == self.line {
                    format!("{}\n", self.after)
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    }

    /// The change as a one-line diff.
    pub fn diff(&self) -> String {
        format!(
            "{}:{}: `{}` → `{}`",
            self.kernel,
            self.line,
            self.before.trim(),
            self.after.trim()
        )
    }
}

/// The operator swaps, longest first so that `<=` is not read as `<`.
const SWAPS: &[(&str, &str)] = &[
    ("<=", "<"),
    (">=", ">"),
    ("==", "!="),
    ("!=", "=="),
    ("&&", "||"),
    ("||", "&&"),
    (" < ", " <= "),
    (" > ", " >= "),
    (" + ", " - "),
    (" - ", " + "),
    (" * ", " / "),
    (" / ", " * "),
    ("min(", "max("),
    ("max(", "min("),
    (".x", ".y"),
    (".y", ".z"),
    (".z", ".w"),
    (".w", ".x"),
];

/// Every single-token mutant of a code line (comments, declarations of
/// bindings and the element type are left alone).
fn line_mutants(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let trimmed = code.trim_start();
    if trimmed.is_empty()
        || trimmed.starts_with("@group")
        || trimmed.starts_with("alias ")
        || trimmed.starts_with("enable ")
        || trimmed.starts_with("struct ")
    {
        return vec![];
    }
    let mut out = Vec::new();
    let seen = |m: String, out: &mut Vec<String>| {
        if m != line && !out.contains(&m) {
            out.push(m);
        }
    };
    for (from, to) in SWAPS {
        for (at, _) in code.match_indices(from) {
            // `<=` inside `<==`, `->` arrows and `>>` shifts are not operators
            let before = &code[..at];
            let after = &code[at + from.len()..];
            if from.trim() == ">" && (before.ends_with('-') || after.starts_with('>')) {
                continue;
            }
            if (*from == " - " || *from == " + ") && before.trim_end().ends_with(['=', '(', ',']) {
                continue;
            }
            let mutated = format!("{before}{to}{after}{}", &line[code.len()..]);
            seen(mutated, &mut out);
        }
    }
    // integer literals: 4u → 3u and 5u (not inside identifiers or floats)
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit()
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric()
                    || bytes[i - 1] == b'_'
                    || bytes[i - 1] == b'.'))
        {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let is_uint = i < bytes.len() && bytes[i] == b'u';
            let is_float = i < bytes.len() && (bytes[i] == b'.' || bytes[i] == b'e');
            if is_uint && !is_float {
                let n: u64 = code[start..i].parse().unwrap_or(0);
                for m in [n.wrapping_sub(1), n + 1] {
                    if n == 0 && m == u64::MAX {
                        continue;
                    }
                    let mutated =
                        format!("{}{m}{}{}", &code[..start], &code[i..], &line[code.len()..]);
                    seen(mutated, &mut out);
                }
            }
        }
        i += 1;
    }
    out
}

/// Up to `n` distinct mutants of `kernel` (whose one-piece source is
/// `source`), drawn with `seed` from the functions the kernel runs in
/// `precision` (in f64 the texture reads of `lib/texels.wgsl` become
/// storage reads, so its texture functions run in f32 only).
pub fn mutants(
    kernel: &'static str,
    source: &str,
    n: usize,
    seed: u64,
    precision: crate::shaders::Precision,
) -> Vec<Mutant> {
    let lines: Vec<&str> = source.lines().collect();
    // instantiating keeps the source's lines where they were (it rewrites
    // within lines and appends its maths), so its live ranges are the source's
    let instantiated = crate::shaders::instantiate(source, precision);
    let run: Vec<&str> = instantiated.lines().collect();
    let mut all: Vec<Mutant> = Vec::new();
    for (start, end) in live_functions(&run) {
        if end >= lines.len() {
            continue; // an appended f64 maths function: not in the source
        }
        for (i, line) in lines.iter().enumerate().take(end + 1).skip(start) {
            for after in line_mutants(line) {
                all.push(Mutant {
                    kernel,
                    line: i + 1,
                    before: line.to_string(),
                    after,
                });
            }
        }
    }
    let mut rng = Rng::new(
        seed ^ kernel
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64),
    );
    rng.shuffle(&mut all);
    all.truncate(n);
    all.sort_by_key(|m| m.line);
    all
}

/// The line ranges of the functions the kernel runs: its entry point and
/// every function called from a live one (a library's unused helpers are
/// left alone: a mutant there cannot change anything).
fn live_functions(lines: &[&str]) -> Vec<(usize, usize)> {
    // (name, first line, last line, is the entry point) of every function
    let mut functions: Vec<(String, usize, usize, bool)> = Vec::new();
    let mut entry_next = false;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("@compute") {
            entry_next = true;
        }
        if let Some(rest) = l.strip_prefix("fn ") {
            let name = rest.split('(').next().unwrap_or("").trim().to_string();
            let end = (i..lines.len())
                .find(|&j| lines[j] == "}")
                .unwrap_or(lines.len() - 1);
            functions.push((name, i, end, entry_next));
            entry_next = false;
        }
    }
    let calls = |body: (usize, usize), name: &str| {
        let pattern = format!("{name}(");
        lines[body.0 + 1..=body.1].iter().any(|l| {
            let code = l.split("//").next().unwrap_or("");
            code.match_indices(&pattern).any(|(at, _)| {
                !code[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            })
        })
    };
    let mut live: Vec<bool> = functions.iter().map(|f| f.3).collect();
    loop {
        let mut grew = false;
        for a in 0..functions.len() {
            for b in 0..functions.len() {
                if live[a] && !live[b] && calls((functions[a].1, functions[a].2), &functions[b].0) {
                    live[b] = true;
                    grew = true;
                }
            }
        }
        if !grew {
            break;
        }
    }
    functions
        .iter()
        .zip(live)
        .filter(|(_, l)| *l)
        .map(|(f, _)| (f.1, f.2))
        .collect()
}

/// A reviewed equivalent mutant: kernel, the line before and after (as
/// trimmed text), and why it changes nothing.
#[derive(Clone, Debug)]
pub struct Equivalent {
    pub kernel: String,
    pub before: String,
    pub after: String,
    pub reason: String,
}

/// Parses the reviewed list: one mutant per line, `kernel | before | after
/// | reason`; `#` starts a comment. A line without its four fields, or
/// with an empty one, is an [`Error::Config`](crate::Error::Config) naming
/// `file` and the line.
pub fn equivalents(file: &str, text: &str) -> crate::Result<Vec<Equivalent>> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = l.splitn(4, " | ").map(str::trim).collect();
        if f.len() != 4 || f.iter().any(|x| x.is_empty()) {
            return Err(crate::Error::Config {
                what: format!("{file}, line {}", i + 1),
                message: format!(
                    "expected `kernel | line before | line after | why it changes nothing` \
                     (four fields separated by ' | '), found {} field(s)",
                    f.iter().filter(|x| !x.is_empty()).count()
                ),
            });
        }
        out.push(Equivalent {
            kernel: f[0].into(),
            before: f[1].into(),
            after: f[2].into(),
            reason: f[3].into(),
        });
    }
    Ok(out)
}

impl Equivalent {
    pub fn matches(&self, m: &Mutant) -> bool {
        self.kernel == m.kernel && self.before == m.before.trim() && self.after == m.after.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaders::Precision::F32;

    #[test]
    fn a_line_yields_operator_literal_and_component_mutants() {
        let got = line_mutants("    let i = min(a.x + 4u, b);");
        for want in [
            "    let i = max(a.x + 4u, b);",
            "    let i = min(a.x - 4u, b);",
            "    let i = min(a.x + 3u, b);",
            "    let i = min(a.x + 5u, b);",
            "    let i = min(a.y + 4u, b);",
        ] {
            assert!(got.contains(&want.to_string()), "{want} not in {got:?}");
        }
        // comments and bindings are not mutated; shifts and arrows are not comparisons
        assert!(line_mutants("// a < b").is_empty());
        assert!(line_mutants("@group(0) @binding(1) var<storage> x: array<f32>;").is_empty());
        assert!(line_mutants("fn f(k: u32) -> u32 { return k >> 2u; }")
            .iter()
            .all(|m| !m.contains(">=") && !m.contains("- >")));
    }

    #[test]
    fn mutants_are_seeded_and_apply_to_their_line() {
        let src = "@compute @workgroup_size(1)\nfn f(a: u32) -> u32 {\n    return g(a) + 1u;\n}\nfn g(a: u32) -> u32 {\n    return a * 2u;\n}\nfn unused(a: u32) -> u32 {\n    return a - 7u;\n}\n";
        let a = mutants("f", src, 2, 1, F32);
        assert_eq!(a, mutants("f", src, 2, 1, F32));
        assert_eq!(a.len(), 2);
        let applied = a[0].apply(src);
        assert_ne!(applied, src);
        assert_eq!(applied.lines().count(), src.lines().count());
        // every mutant lies in f or the g it calls, none in `unused`
        let every = mutants("f", src, 100, 1, F32);
        assert!(every.iter().any(|m| m.line == 6), "{every:?}");
        assert!(every.iter().all(|m| m.line < 8), "{every:?}");
    }

    #[test]
    fn in_f64_the_texture_reads_are_not_mutated() {
        // f64 turns tex_at(t, i) into a storage read: tex_at itself never runs
        let src = "@group(0) @binding(1) var t: texture_2d_array<f32>;\n@compute @workgroup_size(1)\nfn f(@builtin(global_invocation_id) gid: vec3<u32>) {\n    let a = tex_at(t, gid.x + 1u);\n}\nfn tex_at(t: texture_2d_array<f32>, i: u32) -> real {\n    return real(textureLoad(t, vec2<u32>(i & 3u, 0u), i >> 2u, 0)[i & 3u]);\n}\n";
        let f32 = mutants("f", src, 100, 1, F32);
        assert!(f32.iter().any(|m| m.line == 7), "{f32:?}");
        let f64 = mutants("f", src, 100, 1, crate::shaders::Precision::F64);
        assert!(
            !f64.is_empty() && f64.iter().all(|m| m.line == 4),
            "{f64:?}"
        );
    }

    #[test]
    fn the_reviewed_list_parses_and_matches() {
        let e = equivalents(
            "list",
            "# comment\nk | a < b | a <= b | b is never equal to a\n",
        )
        .unwrap();
        assert_eq!(e.len(), 1);
        let bad = equivalents("list", "# comment\n\nk | a < b | a <= b\n").unwrap_err();
        assert!(bad.to_string().contains("list, line 3"), "{bad}");
        let m = Mutant {
            kernel: "k",
            line: 3,
            before: "  a < b".into(),
            after: "  a <= b".into(),
        };
        assert!(e[0].matches(&m));
    }
}
