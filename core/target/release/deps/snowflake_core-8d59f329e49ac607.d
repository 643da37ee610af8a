/work/main/core/target/release/deps/snowflake_core-8d59f329e49ac607.d: src/lib.rs src/generator.rs src/layout.rs src/store.rs

/work/main/core/target/release/deps/libsnowflake_core-8d59f329e49ac607.rlib: src/lib.rs src/generator.rs src/layout.rs src/store.rs

/work/main/core/target/release/deps/libsnowflake_core-8d59f329e49ac607.rmeta: src/lib.rs src/generator.rs src/layout.rs src/store.rs

src/lib.rs:
src/generator.rs:
src/layout.rs:
src/store.rs:
