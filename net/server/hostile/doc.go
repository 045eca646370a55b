// Package hostile holds the hostile-load test of Librecord's server (issue
// 8): the real `librecord serve` binary, attacked from many loopback
// sources at once while a well-behaved client chats. It has tests and a
// benchmark only; nothing imports it.
package hostile
