use super::*;
use proptest::prelude::*;

/// The exact order of two unsigned decimal texts, from their digits (the reference the float
/// comparison is checked against).
fn exact_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (decimal(a).expect("decimal"), decimal(b).expect("decimal"));
    match (a.0.is_empty(), b.0.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (false, false) => {}
    }
    // The power of ten just above the leading digit, then the digits left-aligned.
    let magnitude = |(digits, exp): &(String, i64)| digits.len() as i64 + exp;
    magnitude(&a).cmp(&magnitude(&b)).then_with(|| {
        let width = a.0.len().max(b.0.len());
        format!("{:0<width$}", a.0).cmp(&format!("{:0<width$}", b.0))
    })
}

/// [`exact_cmp`] with signs.
fn signed_cmp(a: &str, b: &str) -> Ordering {
    let sign = |t: &str| {
        let magnitude = t.trim_start_matches('-');
        let zero = decimal(magnitude).expect("decimal").0.is_empty();
        (t.starts_with('-') && !zero, magnitude.to_owned())
    };
    match (sign(a), sign(b)) {
        ((false, a), (false, b)) => exact_cmp(&a, &b),
        ((true, a), (true, b)) => exact_cmp(&b, &a),
        ((true, _), (false, _)) => Ordering::Less,
        ((false, _), (true, _)) => Ordering::Greater,
    }
}

fn float_of(text: &str) -> f64 {
    text.parse().expect("a float")
}

/// A decimal text from its digits, where its point goes, and an exponent.
fn text(digits: &str, point: usize, exp: i32) -> String {
    let point = point.min(digits.len());
    let (whole, fraction) = digits.split_at(point);
    let whole = if whole.is_empty() { "0" } else { whole };
    match (fraction.is_empty(), exp) {
        (true, 0) => whole.to_owned(),
        (true, _) => format!("{whole}e{exp}"),
        (false, 0) => format!("{whole}.{fraction}"),
        (false, _) => format!("{whole}.{fraction}e{exp}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// A float's decimal as Rust writes it in exponent notation (with or without trailing
    /// zeros, or written out) is kept.
    #[test]
    fn every_float_keeps_its_own_text(bits in any::<u64>()) {
        let signed = f64::from_bits(bits);
        prop_assume!(signed.is_finite());
        // What a refusal suggests writing is kept, and reads as the float.
        let suggested = kept_form(signed);
        prop_assert!(f64_keeps(suggested.trim_start_matches('-')), "{}", suggested);
        prop_assert_eq!(float_of(&suggested).to_bits(), signed.to_bits());
        let x = signed.abs();
        let written = format!("{x:e}");
        let (mantissa, exp) = written.split_once('e').unwrap();
        let padded = if mantissa.contains('.') { format!("{mantissa}000e{exp}") } else { format!("{mantissa}.000e{exp}") };
        for text in [written.clone(), format!("{x:E}"), padded, format!("{x:.*}", 1100)] {
            prop_assert!(f64_keeps(&text) == (text.len() < 1100 || decimal(&text) == decimal(&written)), "{}", text);
            // serde_json reads it as Rust does (`float_roundtrip`; without it, 17-digit decimals
            // are read one float off).
            prop_assert_eq!(serde_json::from_str::<f64>(&text).ok(), Some(x), "{}", text);
        }
    }

    /// Between two kept numbers, the floats compare as the decimals do: none merges two
    /// decimals, none reverses them. Pairs are drawn close (the same digits with more appended,
    /// or one step apart), where rounding would show.
    #[test]
    fn kept_numbers_compare_as_their_decimals(
        digits in "[0-9]{1,22}",
        more in "[0-9]{1,8}",
        point in 0usize..22,
        exp in -30i32..30,
        bits in any::<u64>(),
        step in any::<bool>(),
    ) {
        let a = text(&digits, point, exp);
        let b = text(&format!("{digits}{more}"), point, exp);
        let x = f64::from_bits(bits).abs();
        let neighbour = if step { f64::from_bits(x.to_bits() + 1) } else { x };
        let pairs = [
            (a.clone(), b.clone()),
            (format!("{x:e}"), format!("{neighbour:e}")),
            (format!("{x:e}"), a.clone()),
            (format!("{x:e}"), format!("{x:e}").replacen('e', "1e", 1)),
        ];
        for (a, b) in pairs {
            if f64_keeps(&a) && f64_keeps(&b) {
                prop_assert_eq!(float_of(&a).partial_cmp(&float_of(&b)), Some(exact_cmp(&a, &b)), "{} against {}", a, b);
            }
        }
    }

    /// What serde_json writes is read back, but for a float whose two shortest decimals are
    /// equally near (`1581092615614647.25` is written `…47.2` by serde_json, `…47.3` by Rust's
    /// `{:e}`): one only can be kept, or the two would compare equal here and not in CUE.
    #[test]
    fn json_that_serde_json_writes_is_read(
        floats in proptest::collection::vec(any::<u64>(), 0..8),
        ints in proptest::collection::vec(any::<i64>(), 0..4),
        big in any::<u64>(),
        key in "[a-z0-9.\"\\\\]{0,8}",
    ) {
        let floats: Vec<f64> = floats.into_iter().map(f64::from_bits).filter(|x| x.is_finite()).collect();
        let doc = serde_json::json!({ key: { "f": floats, "i": ints, "u": big, "s": "1.00000000000000001" } });
        let text = serde_json::to_string(&doc).unwrap();
        match read_input(&text) {
            Ok(read) => prop_assert_eq!(read, doc),
            Err(InputError::Inexact { written, .. }) => {
                let unsigned = written.trim_start_matches('-');
                let x = float_of(unsigned);
                let rust = format!("{x:e}");
                prop_assert!(decimal(unsigned).unwrap().0.len() == decimal(&rust).unwrap().0.len() && f64_keeps(&rust), "{} refused, {} kept", written, rust);
            }
            Err(other) => prop_assert!(false, "{}", other),
        }
    }

    /// `cmp_int_float` is the order of the integer and the float's decimal (as CUE compares
    /// them, the decimal being what was written: `f64_keeps`), against a reference on decimal
    /// strings; below 2^53 it compares binary values, which this checks agree.
    #[test]
    fn integers_and_floats_compare_exactly(int in any::<i64>(), big in any::<u64>(), bits in any::<u64>(), near in -3i64..3, scale in 50i32..70) {
        let x = f64::from_bits(bits);
        prop_assume!(!x.is_nan());
        let ints = [i128::from(int), i128::from(big), i128::from(int) + i128::from(near)];
        // The float nearest to each integer, too, where rounding hides a difference, and
        // whole floats from 2^50 to 2^70, where the decimal and the binary value part.
        let floats = [x, int as f64, big as f64, (int as f64).trunc() + 0.5, (big as f64) * 2f64.powi(scale - 64)];
        for n in ints {
            for f in floats {
                let expected = if f.is_infinite() {
                    if f > 0.0 { Ordering::Less } else { Ordering::Greater }
                } else {
                    signed_cmp(&n.to_string(), &format!("{f:e}"))
                };
                prop_assert_eq!(cmp_int_float(n, f), Some(expected), "{} against {:e}", n, f);
            }
        }
    }
}

#[test]
fn numbers_a_float_does_not_keep_are_found() {
    for (json, found) in [
        (r#"{"a":7.0000000000000001}"#, Some("7.0000000000000001")),
        (r#"{"a":[1, -6.99999999999999999]}"#, Some("-6.99999999999999999")),
        (r#"{"a":0.10000000000000001}"#, Some("0.10000000000000001")),
        (r#"{"a":123456789012345678901}"#, Some("123456789012345678901")),
        (r#"{"a":9007199254740993.0}"#, Some("9007199254740993.0")),
        (r#"{"a":1e-400}"#, None), // serde_json reads it as 0: refused below, as not kept
        (r#"{"a":"7.0000000000000001","7.0000000000000001":1}"#, None),
        (r#"{"a\"7.0000000000000001":1}"#, None),
        (r#"{"a":[7, 7.0, 7.50, 0.1, 1e21, 1E+21, -0.0, -0e0, 5e-324, 0]}"#, None),
        (r#"{"a":[0, -0]}"#, Some("-0")),
        (
            r#"{"a":[100000000000000000000, 18446744073709551615, -9223372036854775808, 9007199254740993]}"#,
            None,
        ),
    ] {
        assert_eq!(
            first_inexact(json),
            found.or_else(|| json.contains("1e-400").then_some("1e-400")),
            "{json}"
        );
    }
}

#[test]
fn of_two_equally_near_shortest_decimals_one_is_kept() {
    // 1581092615614647.25 exactly: both 17-digit neighbours read as it.
    assert_eq!(float_of("1581092615614647.2"), float_of("1581092615614647.3"));
    assert!(f64_keeps("1581092615614647.3"));
    assert!(!f64_keeps("1581092615614647.2"));
}

#[test]
fn an_input_holding_one_is_refused_naming_it() {
    let error = read_input(r#"{"predicate":{"score":7.0000000000000001}}"#).unwrap_err();
    assert_eq!(
        error,
        InputError::Inexact {
            written: "7.0000000000000001".to_owned(),
            read: "7".to_owned()
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("7.0000000000000001") && message.contains("more digits than a 64-bit float keeps"),
        "{message}"
    );
    assert!(matches!(read_input("{"), Err(InputError::NotJson(_))));
    assert_eq!(read_input(r#"{"a":-0}"#), Err(InputError::NegativeZero));
    assert_eq!(read_input(r#"{"score":7.5}"#), Ok(serde_json::json!({"score": 7.5})));
}

#[test]
fn integers_beyond_a_float_compare_exactly() {
    // Whole floats from 2^53 on: as written, not as held (100000000000000016 in binary).
    assert_eq!(large_whole(1.0000000000000002e17), Some(100_000_000_000_000_020));
    assert_eq!(
        cmp_int_float(100_000_000_000_000_018, 1.0000000000000002e17),
        Some(Ordering::Less)
    );
    assert_eq!(
        cmp_int_float(100_000_000_000_000_020, 1.0000000000000002e17),
        Some(Ordering::Equal)
    );
    assert_eq!(
        cmp_int_float(-100_000_000_000_000_018, -1.0000000000000002e17),
        Some(Ordering::Greater)
    );
    assert_eq!(
        cmp_int_float(9_223_372_036_854_775_900, 9.223372036854776e18),
        Some(Ordering::Less)
    );
    assert_eq!(large_whole(4_503_599_627_370_496.5), None);
    assert_eq!(
        cmp_int_float(9_007_199_254_740_993, 9_007_199_254_740_992.0),
        Some(Ordering::Greater)
    );
    assert_eq!(
        cmp_int_float(i128::from(i64::MAX), 9_223_372_036_854_775_808.0),
        Some(Ordering::Less)
    );
    assert_eq!(
        cmp_int_float(i128::from(u64::MAX), 18_446_744_073_709_551_616.0),
        Some(Ordering::Less)
    );
    assert_eq!(cmp_int_float(-1, -1.5), Some(Ordering::Greater));
    assert_eq!(cmp_int_float(0, -0.0), Some(Ordering::Equal));
    assert_eq!(cmp_int_float(0, f64::NAN), None);
    assert_eq!(cmp_int_float(0, f64::INFINITY), Some(Ordering::Less));
}

#[test]
fn whole_decimals_are_told_from_fractions() {
    for whole in ["2.50e1", "100.0", "0e-5", "1e3", "12345678901234567890e2", "1.5e1"] {
        assert!(is_whole(whole), "{whole}");
    }
    for fraction in ["1e-5", "10.5e0", "1.55e1", "0.1", "1.5e-400"] {
        assert!(!is_whole(fraction), "{fraction}");
    }
}
