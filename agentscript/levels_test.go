package agentscript

// Test stand-ins for the supervisor's mapping of the DESIGN.md levels.
var (
	strict     = Options{LinearRegexOnly: true}
	secure     = Options{LinearRegexOnly: true, AllowCollections: true}
	standard   = Options{AllowWhile: true, AllowArrowValues: true, AllowCollections: true}
	permissive = Options{AllowWhile: true, AllowForIn: true, AllowArrowValues: true,
		AllowFunctions: true, AllowCollections: true}
)
