// The source that the test programs' shared precompiled header is built with (see
// tests/CMakeLists.txt); it holds no code of its own.
