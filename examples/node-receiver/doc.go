// Package nodereceiver is the node-receiver recipe: server.js is an
// Express app that receives backlot's forward deliveries, verifies them
// with the standardwebhooks npm package and processes each delivery once,
// keyed by its Backlot-Delivery-Id. The tests run it behind a real backlot
// built from this repository, across a backlot crash and a receiver
// restart, and send it forged and replayed deliveries.
package nodereceiver
