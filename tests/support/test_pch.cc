// Nothing of its own: the target that builds the tests' precompiled header
// (tests/CMakeLists.txt, servercore_test_pch), which every test reuses.
