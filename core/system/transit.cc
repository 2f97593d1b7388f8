#include "core/system/transit.h"

#include "core/check.h"

namespace moat::system {

std::string_view HandleStateName(HandleState state) {
  switch (state) {
    case HandleState::kOpen: return "open";
    case HandleState::kInTransit: return "in transit";
    case HandleState::kTransferred: return "transferred";
    case HandleState::kClosed: return "closed";
  }
  return "unknown";
}

Status TransitState::CheckUsable(std::string_view operation) const {
  switch (state_) {
    case HandleState::kOpen:
      return OkStatus();
    case HandleState::kInTransit:
      return Error(ErrorCode::kBusy, internal::Concat(operation, ": handle is in transit"));
    case HandleState::kTransferred:
      return Error(ErrorCode::kClosed,
                   internal::Concat(operation, ": handle was transferred to another endpoint"));
    case HandleState::kClosed:
      return Error(ErrorCode::kClosed, internal::Concat(operation, ": handle is closed"));
  }
  MOAT_UNREACHABLE("bad HandleState");
}

Status TransitState::BeginTransit() {
  MOAT_TRY(CheckUsable("begin transit"));
  state_ = HandleState::kInTransit;
  return OkStatus();
}

void TransitState::CancelTransit() {
  MOAT_ASSERT(state_ == HandleState::kInTransit, "CancelTransit in state ",
              HandleStateName(state_));
  state_ = HandleState::kOpen;
}

void TransitState::CompleteTransit() {
  MOAT_ASSERT(state_ == HandleState::kInTransit, "CompleteTransit in state ",
              HandleStateName(state_));
  state_ = HandleState::kTransferred;
}

Status TransitState::Close() {
  MOAT_TRY(CheckUsable("close"));
  state_ = HandleState::kClosed;
  return OkStatus();
}

}  // namespace moat::system
