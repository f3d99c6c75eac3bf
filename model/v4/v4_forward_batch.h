// Internal to the V4 forward: the flattened token batch every sub-layer works on. Tokens of one
// sequence are contiguous and in position order; sub-layers process per-token math in any order
// but stream per-sequence state (KV rows, compressors) strictly in position order.
#pragma once

#include <cstdint>
#include <vector>

#include "model/backend/backend.h"
#include "model/v4/forward_workspace.h"
#include "model/v4/sequence_state.h"
#include "model/v4/step_graphs.h"
#include "model/v4/v4_config.h"

namespace v4 {

class ExpertDispatcher;

struct ForwardStats {
  // (token, layer) pairs where the lightning indexer had more visible compressed rows than
  // indexer_top_k and so dropped some (spec §3.4.4).
  uint64_t indexer_selections = 0;
  uint64_t indexer_rows_dropped = 0;
  // [layer][expert]: how many tokens picked each routed expert (spec §3.5), hash-routed and
  // scored layers alike; main layers only (the MTP block is not counted).
  std::vector<std::vector<uint64_t>> expert_selections;
  // Decode steps run from recordings (StepGraphs).
  StepGraphStats step_graphs;
};

struct ForwardBatch {
  std::vector<int32_t> tokens;
  std::vector<uint64_t> positions;
  std::vector<uint32_t> sequence_of;    // per token: index into `states`
  std::vector<KvStateStore*> states;    // per sequence
  std::vector<int64_t> sequence_begin;  // per sequence: first token index (plus one end entry)
  // Host staging of the KV addresses copied to the device each step: the states' views and
  // their block tables, end to end.
  std::vector<KvSequenceView> views;
  std::vector<uint32_t> block_tables;
  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  // Empties the batch, keeping its capacity.
  void clear() {
    tokens.clear();
    positions.clear();
    sequence_of.clear();
    states.clear();
    sequence_begin.clear();
    views.clear();
    block_tables.clear();
  }
};

struct ForwardContext {
  const V4Config& config;
  Backend& backend;
  ExpertDispatcher& experts;
  ForwardWorkspace& ws;
  const ForwardBatch& batch;
  ForwardStats& stats;
  // The batch's KV state on the device (arrays in the workspace) and the layout all its
  // sequences share.
  const KvLayout& kv_layout;
  const KvStep& kv;
  // The tokens [first_token, first_token + n_tokens) of the batch this context runs (two
  // micro-batches, V4Forward), with `kv` their KV step and `shared_rows` the device's {0, n}
  // for the shared expert; n_tokens < 0: the whole batch (and the workspace's all_rows).
  int64_t first_token = 0;
  int64_t n_tokens = -1;
  const int64_t* shared_rows = nullptr;
  // A step padded for a recording (padding_kv_state.h): on the device, entry j holds the real
  // tokens × j, the (token, slot) pairs of a layer routing j experts that the expert statistics
  // count. Null: every token counts.
  const int64_t* counted_pairs = nullptr;

  int64_t size() const { return n_tokens < 0 ? batch.size() : n_tokens; }
  const uint64_t* positions() const { return ws.positions.data<uint64_t>() + first_token; }
  const int32_t* tokens() const { return ws.tokens.data<int32_t>() + first_token; }
  const int64_t* all_rows() const {
    return shared_rows ? shared_rows : ws.all_rows.data<int64_t>();
  }
};

}  // namespace v4
