//! Values clients send inside messages: money (any units and nanos), email
//! addresses, phone numbers, tags and custom fields. Checks answer
//! violations, never panic, and what they accept keeps its promises.
#![no_main]

use crm_shared::{
    money::{Money, Totals},
    validate::{Violations, email_key, is_email, normalize_tags, phone_key},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if is_email(&text) {
        assert!(text.contains('@'));
    }
    let _ = email_key(&text);
    if let Some(key) = phone_key(&text) {
        assert!(
            key.trim_start_matches('+')
                .chars()
                .all(|c| c.is_ascii_digit())
        );
    }
    let mut tags: Vec<String> = text.split(',').map(str::to_owned).collect();
    normalize_tags(&mut tags);
    let mut violations = Violations::default();
    violations.tags("tags", &tags);
    violations.text("text", &text, 100);

    if data.len() >= 12 {
        let units = i64::from_le_bytes(data[0..8].try_into().unwrap_or_default());
        let nanos = i32::from_le_bytes(data[8..12].try_into().unwrap_or_default());
        let money = Money {
            currency_code: text.chars().take(3).collect(),
            units,
            nanos,
        };
        let mut violations = Violations::default();
        money.check("amount", &mut violations);
        let accepted = violations.finish().is_ok();
        if accepted {
            let back = Money::from_nanos(&money.currency_code, money.total_nanos());
            assert_eq!(back, money, "an accepted amount survives nanos and back");
            let _ = money.scaled(f64::from(nanos) / 1e9);
            let mut totals = Totals::default();
            totals.add(&money);
            totals.add(&money);
        }
    }
});
