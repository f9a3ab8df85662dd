use std::os::unix::fs::PermissionsExt;

use super::{gzip, names, Tar, NO_CANCEL};
use crate::content::Digest;
use crate::layers::{Error, LayerStore, Limits};

fn store() -> (tempfile::TempDir, LayerStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open(&tmp.path().join("layers")).unwrap();
    (tmp, store)
}

/// No work left behind and nothing published.
fn assert_clean(tmp: &tempfile::TempDir) {
    assert!(
        names(&tmp.path().join("layers/tmp")).is_empty(),
        "tmp leftovers"
    );
    assert!(
        names(&tmp.path().join("layers/sha256")).is_empty(),
        "published"
    );
}

#[test]
fn unpacks_publishes_and_removes() {
    let (tmp, store) = store();
    let base = Tar::new()
        .dir("etc/")
        .file("etc/os-release", b"ID=test\n")
        .bytes();
    let top = Tar::new().file("etc/motd", b"hi\n").bytes();
    let base_diff = Digest::of(&base);
    let top_diff = Digest::of(&top);
    let base_id = Digest::chain(None, &base_diff);
    let top_id = Digest::chain(Some(&base_id), &top_diff);

    let meta = store
        .unpack(
            &base_id,
            None,
            &base_diff,
            &gzip(&base)[..],
            &Limits::default(),
            &NO_CANCEL,
        )
        .unwrap();
    assert_eq!(meta.diff_id, base_diff);
    assert_eq!((meta.size, meta.entries, meta.parent.clone()), (8, 2, None));
    let meta2 = store
        .unpack(
            &top_id,
            Some(&base_id),
            &top_diff,
            &top[..],
            &Limits::default(),
            &NO_CANCEL,
        )
        .unwrap();
    assert_eq!(meta2.parent, Some(base_id.clone()));

    assert!(store.exists(&base_id) && store.exists(&top_id));
    assert_eq!(store.meta(&top_id).unwrap(), meta2);
    assert_eq!(
        std::fs::read(store.path(&base_id).join("etc/os-release")).unwrap(),
        b"ID=test\n"
    );
    assert_eq!(
        store.path(&top_id),
        tmp.path()
            .join("layers/sha256")
            .join(top_id.hex())
            .join("diff")
    );
    let mut want = vec![base_id.clone(), top_id.clone()];
    want.sort();
    assert_eq!(store.list().unwrap(), want);
    assert_eq!(
        store.chain(&top_id).unwrap(),
        vec![store.path(&top_id), store.path(&base_id)]
    );

    // A second unpack of the same layer is a no-op returning the record.
    let again = store
        .unpack(
            &base_id,
            None,
            &base_diff,
            &b"not even read"[..],
            &Limits::default(),
            &NO_CANCEL,
        )
        .unwrap();
    assert_eq!(again, meta);

    let freed = store.remove(&top_id).unwrap();
    assert!(freed > 0);
    assert!(!store.exists(&top_id));
    assert!(matches!(store.meta(&top_id), Err(Error::NotFound { .. })));
    assert!(matches!(store.remove(&top_id), Err(Error::NotFound { .. })));
    assert!(names(&tmp.path().join("layers/tmp")).is_empty());
}

#[test]
fn wrong_diff_id_leaves_nothing() {
    let (tmp, store) = store();
    let blob = Tar::new().file("a", b"a").bytes();
    let claimed = Digest::of(b"something else");
    let id = Digest::chain(None, &claimed);
    let err = store
        .unpack(
            &id,
            None,
            &claimed,
            &blob[..],
            &Limits::default(),
            &NO_CANCEL,
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    assert!(
        msg.contains(&claimed.to_string()) && msg.contains(&Digest::of(&blob).to_string()),
        "{msg}"
    );
    assert!(!store.exists(&id));
    assert_clean(&tmp);
}

#[test]
fn refused_layer_leaves_nothing() {
    let (tmp, store) = store();
    // Read-only directories and a whiteout before the refusal make the
    // temp dir awkward to delete.
    let blob = Tar::new()
        .dir_mode("ro/", 0o555)
        .dir_mode("ro/inner/", 0o000)
        .file("ro/inner/f", b"f")
        .file("ro/.wh.gone", b"")
        .symlink("esc", "/")
        .file("esc/tmp/pwned", b"x")
        .bytes();
    let diff = Digest::of(&blob);
    let id = Digest::chain(None, &diff);
    let err = store
        .unpack(&id, None, &diff, &blob[..], &Limits::default(), &NO_CANCEL)
        .unwrap_err();
    assert!(matches!(err, Error::Unsafe { .. }), "{err:?}");
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    assert_clean(&tmp);
}

#[test]
fn missing_parent_and_bad_chain_ids_are_refused() {
    let (tmp, store) = store();
    let blob = Tar::new().file("a", b"a").bytes();
    let diff = Digest::of(&blob);
    let parent = Digest::of(b"parent");
    let id = Digest::chain(Some(&parent), &diff);
    let err = store
        .unpack(
            &id,
            Some(&parent),
            &diff,
            &blob[..],
            &Limits::default(),
            &NO_CANCEL,
        )
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = store
        .unpack(
            &parent,
            None,
            &diff,
            &blob[..],
            &Limits::default(),
            &NO_CANCEL,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
    assert_clean(&tmp);
}

#[test]
fn open_clears_crash_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layers");
    LayerStore::open(&root).unwrap();
    let left = root.join("tmp/123-4-5/diff/a/b");
    std::fs::create_dir_all(&left).unwrap();
    std::fs::write(left.join("f"), b"x").unwrap();
    std::fs::set_permissions(&left, std::fs::Permissions::from_mode(0o500)).unwrap();
    if super::is_root() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("tmp/123-4-5/diff/dev"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }
    LayerStore::open(&root).unwrap();
    assert!(names(&root.join("tmp")).is_empty());
}

#[test]
fn lower_layers_of_the_chain_are_checked() {
    let (tmp, store) = store();
    let base = Tar::new().symlink("etc", "/").bytes();
    let base_diff = Digest::of(&base);
    let base_id = Digest::chain(None, &base_diff);
    store
        .unpack(
            &base_id,
            None,
            &base_diff,
            &base[..],
            &Limits::default(),
            &NO_CANCEL,
        )
        .unwrap();
    let top = Tar::new().file("etc/berth-pwned", b"x").bytes();
    let top_diff = Digest::of(&top);
    let top_id = Digest::chain(Some(&base_id), &top_diff);
    let err = store
        .unpack(
            &top_id,
            Some(&base_id),
            &top_diff,
            &top[..],
            &Limits::default(),
            &NO_CANCEL,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Unsafe { .. }), "{err:?}");
    assert!(err.to_string().contains("lower layer"), "{err}");
    assert!(!std::path::Path::new("/etc/berth-pwned").exists());
    assert!(!store.exists(&top_id));
    assert!(names(&tmp.path().join("layers/tmp")).is_empty());
}
