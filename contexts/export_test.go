package contexts

// LibraryName is the name of the store's function library, for tests that
// make Redis lose it.
var LibraryName = libraryName
