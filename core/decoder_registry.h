// MOAT_DECODER(name): marks a function that reads peer-controlled bytes or
// descriptors. It expands to nothing; //fuzz:decoder_coverage_test reads the
// sources and fails unless some fuzz target declares MOAT_FUZZ_COVERS("name").
// A new decoder therefore cannot land without a fuzz target (R25).
//
//   MOAT_DECODER(frame_header)
//   Result<FrameHeader> DecodeFrameHeader(std::span<const uint8_t> bytes, ...);
#ifndef MOAT_CORE_DECODER_REGISTRY_H_
#define MOAT_CORE_DECODER_REGISTRY_H_

#define MOAT_DECODER(name)

#endif  // MOAT_CORE_DECODER_REGISTRY_H_
