//! What the types forbid: each file in tests/ui must fail to compile, with the error in
//! its `.stderr` file. Regenerate the expected output with `TRYBUILD=overwrite`.

#[test]
fn forbidden_programs_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
