/work/main/core/target/release/deps/snowflake_core-90edafc42d85c9de.d: src/lib.rs src/generator.rs src/generator/tests.rs src/layout.rs src/store.rs

/work/main/core/target/release/deps/snowflake_core-90edafc42d85c9de: src/lib.rs src/generator.rs src/generator/tests.rs src/layout.rs src/store.rs

src/lib.rs:
src/generator.rs:
src/generator/tests.rs:
src/layout.rs:
src/store.rs:
