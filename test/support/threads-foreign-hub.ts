/**
 * A hub module for the transform-thread tests that is not the engine's hub: it loads, but has none of its flows,
 * as when a program hands the engine one hub and its threads another module.
 */
import { defineHub } from "../../src/core/hub.ts";

export default defineHub({ systems: [], entities: [], flows: [] });
