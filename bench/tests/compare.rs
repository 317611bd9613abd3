//! The comparison table: ratios to the floor, and a bad report is an error.

mod common;

use common::{load_report as report, temp_dir, write};

#[test]
fn ratios_are_relative_to_the_floor() {
    let dir = temp_dir("ratio");
    write(&dir, "mmsg.sat.json", &report(200_000.0, 0));
    write(&dir, "tokio.sat.json", &report(100_000.0, 3));
    write(&dir, "tokio.lat.json", &report(50_000.0, 0));
    let table = ringwire_bench::compare::table(std::slice::from_ref(&dir), "mmsg").expect("table");
    let _ = std::fs::remove_dir_all(&dir);
    let mmsg = table
        .lines()
        .find(|l| l.starts_with("| mmsg "))
        .expect("mmsg row");
    let tokio = table
        .lines()
        .find(|l| l.starts_with("| tokio "))
        .expect("tokio row");
    assert!(mmsg.contains("| 200000 | 1.00 |"), "{table}");
    assert!(tokio.contains("| 100000 (3 lost) | 0.50 |"), "{table}");
    assert!(tokio.contains("| 10.0 / 30.0 |"), "{table}");
}

#[test]
fn a_malformed_report_is_an_error() {
    let dir = temp_dir("bad");
    write(&dir, "mmsg.sat.json", &report(1.0, 0));
    std::fs::write(dir.join("tokio.sat.json"), "{\"sent\": ").expect("write");
    let result = ringwire_bench::compare::table(std::slice::from_ref(&dir), "mmsg");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(result.is_err());
}

#[test]
fn several_rounds_give_medians() {
    let dirs: Vec<_> = (0..3).map(|i| temp_dir(&format!("round{i}"))).collect();
    for (dir, (floor, tokio)) in dirs.iter().zip([
        (100_000.0, 90_000.0),
        (300_000.0, 10_000.0),
        (200_000.0, 50_000.0),
    ]) {
        write(dir, "mmsg.sat.json", &report(floor, 0));
        write(dir, "tokio.sat.json", &report(tokio, 0));
    }
    let table = ringwire_bench::compare::table(&dirs, "mmsg").expect("table");
    for d in &dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    let mmsg = table
        .lines()
        .find(|l| l.starts_with("| mmsg "))
        .expect("mmsg row");
    let tokio = table
        .lines()
        .find(|l| l.starts_with("| tokio "))
        .expect("tokio row");
    assert!(mmsg.contains("| 200000 | 1.00 |"), "{table}");
    assert!(tokio.contains("| 50000 | 0.25 |"), "{table}");
}
