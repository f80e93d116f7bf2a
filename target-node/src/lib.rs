//! quorate-node: the reference leaderless (Dynamo-style) node.
