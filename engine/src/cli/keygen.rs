//! `ringwire keygen --out FILE [--force] [--psk]` and `ringwire pubkey FILE`: the key files of
//! the `[security]` table.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use ringwire::security::{read_key_file, write_key_file};
use ringwire::session::{Keypair, PrivateKey, random_key};

use super::output::{note, out};

/// Writes a new private key (or with `psk`, a network pre-shared key) to `path`, mode 0600,
/// and prints the public key (for a private key) on standard output. Refuses an existing file
/// unless `force`. Exit status 0, or 1 if nothing was written.
pub fn keygen(path: &Path, force: bool, psk: bool) -> ExitCode {
    let (key, public) = if psk {
        match random_key() {
            Ok(mut bytes) => {
                let key = PrivateKey::from_bytes(bytes);
                zeroize::Zeroize::zeroize(&mut bytes);
                (key, None)
            }
            Err(e) => {
                note!("ringwire keygen: cannot get random bytes: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        match Keypair::generate() {
            Ok(k) => (k.private.clone(), Some(k.public)),
            Err(e) => {
                note!("ringwire keygen: cannot get random bytes: {e}");
                return ExitCode::from(1);
            }
        }
    };
    match write_key_file(path, &key, force) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            note!(
                "ringwire keygen: {} exists; refusing to overwrite a key (--force replaces it, \
                 and every peer that knew the old one must be told)",
                path.display()
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            note!("ringwire keygen: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    match public {
        Some(public) => {
            note!(
                "ringwire keygen: wrote a private key to {} (mode 0600); its public key, for \
                 clients and `allowed_peers`, on standard output",
                path.display()
            );
            out!("{public}");
        }
        None => note!(
            "ringwire keygen: wrote a network pre-shared key to {} (mode 0600); give every \
             node and client of the network a copy, by a private channel",
            path.display()
        ),
    }
    ExitCode::SUCCESS
}

/// Prints the public key of the private key file `path` (its permissions checked as `serve`
/// checks them). Exit status 0, or 2 if the file cannot be used.
pub fn pubkey(path: &Path) -> ExitCode {
    match read_key_file(path) {
        Ok(private) => {
            out!("{}", private.public_key());
            ExitCode::SUCCESS
        }
        Err(e) => {
            note!("ringwire pubkey: {e}");
            ExitCode::from(2)
        }
    }
}
