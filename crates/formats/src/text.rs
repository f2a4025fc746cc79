//! Writing text formats into a `String` (the rendered VPN and SIP files, nftables rulesets):
//! [`push!`](crate::push) and [`pushln!`](crate::pushln) are `write!` and `writeln!` for a
//! `String`, whose `fmt::Write` cannot fail, so no caller drops a `Result`.

/// `write!` into a `String` (or `&mut String`).
#[macro_export]
macro_rules! push {
    ($s:expr, $($arg:tt)*) => {{
        use ::std::fmt::Write as _;
        // fmt::Write for String never returns an error: there is nothing to drop.
        let _ = $s.write_fmt(format_args!($($arg)*));
    }};
}

/// `writeln!` into a `String` (or `&mut String`).
#[macro_export]
macro_rules! pushln {
    ($s:expr, $($arg:tt)*) => {{
        $crate::push!($s, $($arg)*);
        $s.push('\n');
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_writes_like_write_and_writeln() {
        let mut s = String::new();
        crate::push!(s, "a{}", 1);
        crate::pushln!(s, " b {x}", x = 2);
        let r = &mut s;
        crate::pushln!(r, "c");
        assert_eq!(s, "a1 b 2\nc\n");
    }
}
