package contexts

// LibraryName is the name of the store's function library, for tests that
// make Redis lose it.
var LibraryName = libraryName

// SetSessionsPerCall sets how many sessions one call of the apply program
// changes at most (1: as on Redis Cluster).
func SetSessionsPerCall(s *Store, n int) { s.sessionsPerCall = n }
