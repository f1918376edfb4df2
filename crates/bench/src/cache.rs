//! The generator's cache of SCRAM salted passwords, kept in a file between runs as real clients
//! keep theirs, so that PBKDF2 runs once per (password, salt, iterations, hash) and not at every
//! login: otherwise the generator, not the server, would be what a login storm measures.
//!
//! One line per entry: `<hash> <password tag> <salt b64> <iterations> <salted b64>`. The password
//! tag is a SHA-256 prefix of the password, so the file does not hold the password itself (the
//! salted password is still a secret for that salt: keep the file as private as the password).

use std::collections::HashMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest as _, Sha256};
use starling_sasl::{SaltedPassword, ScramHash};

type Key = (ScramHash, Vec<u8>, u32);

/// Salted passwords for one password, loaded from and appended to a file.
#[derive(Debug)]
pub struct ScramCache {
    path: Option<PathBuf>,
    tag: String,
    entries: HashMap<Key, SaltedPassword>,
    added: Vec<SaltedPassword>,
    /// Logins that had to run PBKDF2 because no entry matched.
    pub misses: u64,
}

fn tag_of(password: &str) -> String {
    let digest = Sha256::digest(password.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl ScramCache {
    /// A cache for `password`, loaded from `path` when it exists (`None`: in memory only).
    /// Lines for other passwords or that do not parse are skipped.
    pub fn load(path: Option<&Path>, password: &str) -> io::Result<ScramCache> {
        let tag = tag_of(password);
        let mut entries = HashMap::new();
        if let Some(path) = path {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    for salted in text.lines().filter_map(|l| parse_line(l, &tag)) {
                        entries.insert(
                            (salted.hash(), salted.salt().to_vec(), salted.iterations()),
                            salted,
                        );
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ScramCache {
            path: path.map(Path::to_path_buf),
            tag,
            entries,
            added: Vec::new(),
            misses: 0,
        })
    }

    /// Every entry known for this password (a SCRAM client picks the one matching the server's
    /// salt and iterations).
    pub fn get(&self, hash: ScramHash, salt: &[u8], iterations: u32) -> Option<&SaltedPassword> {
        self.entries.get(&(hash, salt.to_vec(), iterations))
    }

    /// Remembers a freshly derived salted password.
    pub fn insert(&mut self, salted: SaltedPassword) {
        let key = (salted.hash(), salted.salt().to_vec(), salted.iterations());
        if self.entries.insert(key, salted.clone()).is_none() {
            self.added.push(salted);
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the entries added since loading to the file.
    pub fn save(&mut self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if self.added.is_empty() {
            return Ok(());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = String::new();
        for s in self.added.drain(..) {
            out.push_str(&format!(
                "{} {} {} {} {}\n",
                s.hash().name(),
                self.tag,
                B64.encode(s.salt()),
                s.iterations(),
                B64.encode(s.as_bytes())
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(out.as_bytes())
    }
}

fn parse_line(line: &str, tag: &str) -> Option<SaltedPassword> {
    let mut f = line.split(' ');
    let hash = ScramHash::from_name(f.next()?)?;
    if f.next()? != tag {
        return None;
    }
    let salt = B64.decode(f.next()?).ok()?;
    let iterations = f.next()?.parse().ok()?;
    let bytes = B64.decode(f.next()?).ok()?;
    SaltedPassword::from_parts(hash, salt, iterations, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_a_save_and_load_for_the_same_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/scram.cache");
        let salted = SaltedPassword::derive(ScramHash::Sha256, "pw", b"NaCl", 128).unwrap();

        let mut cache = ScramCache::load(Some(&path), "pw").unwrap();
        assert!(cache.is_empty());
        cache.insert(salted.clone());
        cache.insert(salted.clone());
        cache.save().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains(" pw "));

        let again = ScramCache::load(Some(&path), "pw").unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again.get(ScramHash::Sha256, b"NaCl", 128), Some(&salted));
        assert_eq!(again.get(ScramHash::Sha256, b"NaCl", 129), None);
        assert_eq!(again.get(ScramHash::Sha1, b"NaCl", 128), None);

        let other = ScramCache::load(Some(&path), "another").unwrap();
        assert!(other.is_empty());
    }
}
