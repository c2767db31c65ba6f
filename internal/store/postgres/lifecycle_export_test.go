package postgres

// SetBeforeMaintainTable makes every later pass of l call fn as it starts
// on each table, lease held: tests hold a pass there.
func SetBeforeMaintainTable(l *Lifecycle, fn func(table string)) { l.beforeTable = fn }
