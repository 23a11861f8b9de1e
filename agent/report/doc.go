// Package report shows a pass's plan to people (a table, one block per
// user) and to scripts (one JSON object, documented in README.md).
//
// report imports agent, ldapsrc (to print objectGUID anchors) and mapping;
// only the command and the demo import report.
package report
