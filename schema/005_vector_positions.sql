-- A node's vectors in first-insertion order (spec §5.2: ties are broken by it; §5.3: re-indexing a name keeps
-- its place). The index (`actors.vector_index`) writes each point's position; rows of older versions read as 0.
ALTER TABLE kato.vectors ADD COLUMN IF NOT EXISTS position UInt64 DEFAULT 0;
