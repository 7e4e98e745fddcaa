//! The warnings a user must see, as a binding receives them (`caribou::notice`, which the Python
//! package writes to `logging`): each once, naming the value and what to do.

mod support;

use std::time::{Duration, Instant};

use caribou::Config;
use caribou::exporter::spool::endpoint_dir;
use support::{Knocks, closed_port, loose_files_in, serial, spooling};

/// Notices taken within `patience` that contain `needle`.
fn notices_with(needle: &str, patience: Duration) -> Vec<String> {
    let deadline = Instant::now() + patience;
    let mut found = Vec::new();
    loop {
        found.extend(
            caribou::notice::take()
                .into_iter()
                .filter(|m| m.contains(needle)),
        );
        if !found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_endpoint_that_cannot_be_used_is_warned_about_once_per_value() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let bad = "ftp://warned-once.example.com";
    // Configured twice, as a trainer does (set-up, then its run): one warning.
    for _ in 0..2 {
        caribou::configure(Config {
            endpoint: Some(bad.into()),
            ..spooling(closed_port(), root.path())
        });
    }
    let notices = notices_with("warned-once", Duration::ZERO);
    assert_eq!(notices.len(), 1, "{notices:?}");
    let text = &notices[0];
    assert!(
        text.contains(&format!("{bad:?}")),
        "names the value: {text}"
    );
    assert!(text.contains("the scheme is \"ftp\""), "says why: {text}");
    assert!(
        text.contains("expected http://HOST[:PORT][/PATH]"),
        "says what is expected: {text}"
    );
    assert!(text.contains("off for this process"), "{text}");

    // Another bad value is another warning; a usable one none.
    caribou::configure(Config {
        endpoint: Some("not a url".into()),
        ..spooling(closed_port(), root.path())
    });
    assert_eq!(notices_with("\"not a url\"", Duration::ZERO).len(), 1);
    caribou::configure(spooling(closed_port(), root.path()));
    assert!(caribou::notice::take().is_empty());
    caribou::shutdown(Some(Duration::from_millis(300)));
}

#[test]
fn batch_files_in_the_spool_folder_itself_are_warned_about_once() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let loose = loose_files_in(root.path());
    let _ = caribou::notice::take();

    let kestrel = Knocks::listen(0);
    let endpoint = format!("http://127.0.0.1:{}", kestrel.port);
    caribou::configure(spooling(kestrel.port, root.path()));
    let root_text = root.path().display().to_string();
    let notices = notices_with(&root_text, Duration::from_secs(5));
    assert_eq!(notices.len(), 1, "{notices:?}");
    let text = &notices[0];
    assert!(
        text.contains(&format!(
            "{} spooled batch file(s) (5 records)",
            loose.len()
        )),
        "{text}"
    );
    assert!(text.contains("never replayed"), "{text}");
    assert!(
        text.contains(&format!(
            "move them into {}",
            endpoint_dir(root.path(), &endpoint).display()
        )),
        "says where to move them: {text}"
    );

    // A second exporter (configure again) does not warn again.
    caribou::configure(spooling(kestrel.port, root.path()));
    assert!(notices_with(&root_text, Duration::from_millis(500)).is_empty());
    caribou::shutdown(Some(Duration::from_secs(2)));
}
