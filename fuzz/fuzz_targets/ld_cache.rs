//! Any bytes as `/etc/ld.so.cache` and as `/etc/nsswitch.conf`: the closure's readers of the
//! files ld.so and glibc's NSS read must return what they could read, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let entries = hcontainer_translate::closure::parse_ld_so_cache(data);
    // Names and paths end at their NUL, as ld.so reads them.
    for (name, path) in &entries {
        assert!(!name.contains('\0') && !path.to_string_lossy().contains('\0'));
    }
    let _ = hcontainer_translate::closure::nss_modules(&String::from_utf8_lossy(data));
});
