//! Secret values: a wrapper that never prints its content, and random generation.

use airlift_bundle::schema::config::{Charset, Generate};
use rand::rngs::OsRng;
use rand::Rng;

pub use airlift_bundle::secret::{Secret, MASK};

/// Generates a random secret from the operating system's random source.
pub fn generate(spec: &Generate) -> Secret {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const HEX: &[u8] = b"0123456789abcdef";
    let alphabet = match spec.charset {
        Charset::Alphanumeric => ALNUM,
        Charset::Hex => HEX,
    };
    let mut rng = OsRng;
    let value: String = (0..spec.length)
        .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
        .collect();
    Secret::new(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_follow_the_spec_and_differ() {
        let spec = Generate {
            length: 40,
            charset: Charset::Hex,
        };
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.expose().len(), 40);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        let alnum = generate(&Generate {
            length: 16,
            charset: Charset::Alphanumeric,
        });
        assert!(alnum.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
