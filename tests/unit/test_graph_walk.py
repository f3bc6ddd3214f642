"""walk_nodes / walk_graphs: every node and graph of a model, subgraphs at any depth included."""

from __future__ import annotations

from onnx import TensorProto, helper

from olivine.model.handle import walk_graphs, walk_nodes


def _branch(name: str, body_nodes: list) -> object:
    return helper.make_graph(
        body_nodes, name, [], [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [1])]
    )


def _nested() -> object:
    """main: If(then: Loop-free Identity, else: If(then/else: Neg)) + a Loop with a body holding Abs."""
    inner_then = _branch("inner_then", [helper.make_node("Neg", ["x"], ["inner_then_y"], name="neg_t")])
    inner_else = _branch("inner_else", [helper.make_node("Neg", ["x"], ["inner_else_y"], name="neg_e")])
    outer_else = _branch(
        "outer_else",
        [
            helper.make_node(
                "If", ["c"], ["outer_else_y"], name="inner_if", then_branch=inner_then, else_branch=inner_else
            )
        ],
    )
    outer_then = _branch("outer_then", [helper.make_node("Identity", ["x"], ["outer_then_y"], name="ident")])
    body = helper.make_graph(
        [helper.make_node("Abs", ["x"], ["body_y"], name="abs")],
        "body",
        [],
        [helper.make_tensor_value_info("body_y", TensorProto.FLOAT, [1])],
        [helper.make_tensor(name="body_w", data_type=TensorProto.FLOAT, dims=[1], vals=[1.0])],
    )
    nodes = [
        helper.make_node("If", ["c"], ["y"], name="outer_if", then_branch=outer_then, else_branch=outer_else),
        helper.make_node("Loop", ["n", "c"], ["z"], name="loop", body=body),
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
    ]
    return helper.make_graph(nodes, "main", [], [])


def test_walk_nodes_reaches_every_depth_in_order() -> None:
    # onnx.helper writes a node's attributes sorted by name: else_branch before then_branch.
    names = [n.name for n in walk_nodes(_nested().node)]
    assert names == ["outer_if", "inner_if", "neg_e", "neg_t", "ident", "loop", "abs", "relu"]


def test_walk_graphs_yields_each_graph_once() -> None:
    graphs = [g.name for g in walk_graphs(_nested())]
    assert graphs == ["main", "outer_else", "inner_else", "inner_then", "outer_then", "body"]
    initializers = [t.name for g in walk_graphs(_nested()) for t in g.initializer]
    assert initializers == ["body_w"]


def test_a_graph_without_subgraphs_is_itself() -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "flat", [], [])
    assert [g.name for g in walk_graphs(graph)] == ["flat"]
    assert [n.name for n in walk_nodes(graph.node)] == ["r"]
