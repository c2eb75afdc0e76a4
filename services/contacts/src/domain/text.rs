//! Text normalisation for search and de-duplication: case- and
//! accent-folding, email keys and phone keys.

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

/// Lower-cased, accents removed ("José Müller" -> "jose muller"), whitespace collapsed.
pub fn fold(text: &str) -> String {
    let stripped: String = text.nfd().filter(|c| !is_combining_mark(*c)).collect();
    // A few letters are not base + combining mark in Unicode.
    let replaced: String = stripped
        .chars()
        .flat_map(|c| match c {
            'ß' => vec!['s', 's'],
            'ø' | 'Ø' => vec!['o'],
            'æ' | 'Æ' => vec!['a', 'e'],
            'œ' | 'Œ' => vec!['o', 'e'],
            'ł' | 'Ł' => vec!['l'],
            'đ' | 'Đ' => vec!['d'],
            other => other.to_lowercase().collect(),
        })
        .collect();
    replaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub use crm_shared::validate::{email_key, is_email, phone_key};

/// The words of a search query, folded; phone-like words keep only digits.
pub fn query_words(query: &str) -> Vec<String> {
    fold(query)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|word| {
            let digits: String = word.chars().filter(char::is_ascii_digit).collect();
            let phone_like = !digits.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_digit() || "+-().".contains(c));
            if phone_like { digits } else { word.to_owned() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_are_folded_and_phones_are_digits() {
        assert_eq!(
            query_words("+1 (555) 010-0000 José"),
            vec!["1", "555", "0100000", "jose"]
        );
    }

    #[test]
    fn folding_removes_case_and_accents() {
        assert_eq!(fold("  José   MÜLLER "), "jose muller");
        assert_eq!(fold("Straße Øresund"), "strasse oresund");
    }

    #[test]
    fn emails_are_checked_and_keyed() {
        assert!(is_email("ada@example.com"));
        assert!(is_email("ada.lovelace+crm@mail.example.co.uk"));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@-x.com",
        ] {
            assert!(!is_email(bad), "{bad} passed");
        }
        assert_eq!(email_key(" Ada@Example.COM "), "ada@example.com");
    }

    #[test]
    fn phones_normalise_to_one_key() {
        assert_eq!(
            phone_key("+1 (555) 010-0000").as_deref(),
            Some("+15550100000")
        );
        assert_eq!(
            phone_key("001 555 010 0000").as_deref(),
            Some("+15550100000")
        );
        assert_eq!(phone_key("030 1234567").as_deref(), Some("0301234567"));
        assert_eq!(phone_key("12345"), None);
        assert_eq!(phone_key("+1 555 CALL NOW"), None);
    }
}
